//! Events into the server: through its emit API, or as signed webhooks once
//! a route is set ([`Server::route_via_slack`], [`Server::route_via_clickup`]).

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::Server;
use crate::target::Target;
use crate::webhooks::Route;

impl Server {
    /// A cheap handle that emits events (cloned into concurrent requests).
    pub fn emitter(&self) -> Emitter {
        Emitter {
            target: self.target,
            http: self.http.clone(),
            client: self.client.clone(),
            operator_key: self.operator_key.clone(),
            route: self.route.clone(),
        }
    }
}

/// Emits events through the server's HTTP API.
#[derive(Clone)]
pub struct Emitter {
    target: Target,
    http: String,
    client: reqwest::Client,
    operator_key: Option<String>,
    route: Option<Route>,
}

impl Emitter {
    /// Emits through the API of the Nexus node at `http` (a cluster node).
    pub fn nexus(http: &str, client: reqwest::Client, operator_key: &str) -> Emitter {
        Emitter {
            target: Target::Nexus,
            http: http.to_owned(),
            client,
            operator_key: Some(operator_key.to_owned()),
            route: None,
        }
    }

    /// Emits through the HTTP API of the Socket.IO peer at `http` (a cluster process).
    pub fn peer(http: &str, client: reqwest::Client) -> Emitter {
        Emitter {
            target: Target::Socketio,
            http: http.to_owned(),
            client,
            operator_key: None,
            route: None,
        }
    }

    /// One event for one agent; `Ok(true)` when the server accepted it.
    pub async fn emit_agent(&self, agent: &str, data: Value) -> Result<bool> {
        if let Some(route) = &self.route {
            return route.post(&self.client, agent, &data).await;
        }
        let url = match self.target {
            Target::Nexus => format!("{}/api/agents/{agent}/events", self.http),
            Target::Socketio => format!("{}/emit/agent/{agent}", self.http),
        };
        let (status, answer) = self.post_wake_up(&url, data).await?;
        // The baseline also answers 202 for an agent it does not hold; in
        // cluster mode it forwards those through the Redis adapter.
        match (status.as_u16(), self.target) {
            (202, Target::Nexus) => Ok(true),
            (202, Target::Socketio) => Ok(answer["delivered"] == Value::Bool(true)
                || answer["forwarded"] == Value::Bool(true)),
            _ => bail!("{url} answered {status}: {answer}"),
        }
    }

    /// Events for agents `(agent id, data)` in one `POST /api/events` (Nexus
    /// API only). One outcome per event, in order: `Ok` for a 202 result,
    /// the result itself otherwise.
    pub async fn emit_batch(&self, events: &[(String, Value)]) -> Result<Vec<Result<(), String>>> {
        if self.target != Target::Nexus || self.route.is_some() {
            bail!("batches go through the Nexus emit API only");
        }
        let url = format!("{}/api/events", self.http);
        let events_json: Vec<Value> = events
            .iter()
            .map(|(agent, data)| json!({"agent_id": agent, "type": "wake_up", "data": data}))
            .collect();
        let resp = self
            .request(&url)?
            .json(&json!({ "events": events_json }))
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        match (status.as_u16(), answer["results"].as_array()) {
            (200, Some(results)) if results.len() == events.len() => {
                Ok(results.iter().map(batch_outcome).collect())
            }
            _ => bail!("{url} answered {status}: {}", clip(&answer.to_string())),
        }
    }

    /// One event for every agent of `tenant`; returns how many the server
    /// says it addressed.
    pub async fn emit_tenant(&self, tenant: &str, data: Value) -> Result<u64> {
        let url = match self.target {
            Target::Nexus => format!("{}/api/tenants/{tenant}/events", self.http),
            Target::Socketio => format!("{}/emit/tenant/{tenant}", self.http),
        };
        let (status, answer) = self.post_wake_up(&url, data).await?;
        if status.as_u16() != 202 {
            bail!("{url} answered {status}: {answer}");
        }
        Ok(answer["agents"].as_u64().unwrap_or(0))
    }

    /// Posts a `wake_up` with `data`; the status and the JSON answer (null if none).
    async fn post_wake_up(&self, url: &str, data: Value) -> Result<(reqwest::StatusCode, Value)> {
        let resp = self
            .request(url)?
            .json(&json!({"type": "wake_up", "data": data}))
            .send()
            .await?;
        let status = resp.status();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    fn request(&self, url: &str) -> Result<reqwest::RequestBuilder> {
        let req = self.client.post(url);
        Ok(match (self.target, &self.operator_key) {
            (Target::Nexus, Some(key)) => req.bearer_auth(key),
            (Target::Nexus, None) => bail!("no operator key: provision first"),
            (Target::Socketio, _) => req,
        })
    }
}

/// One result of a batch answer: `{"status":202,…}` or a refusal.
fn batch_outcome(result: &Value) -> Result<(), String> {
    match result["status"].as_u64() {
        Some(202) => Ok(()),
        _ => Err(format!("batch result {}", clip(&result.to_string()))),
    }
}

/// At most 300 characters of an answer, for an error message.
fn clip(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_202_result_is_accepted() {
        assert_eq!(
            batch_outcome(&json!({"status": 202, "id": "x", "seq": 3})),
            Ok(())
        );
        let refused = json!({"status": 404, "error": {"code": "not_found"}});
        assert!(batch_outcome(&refused).unwrap_err().contains("not_found"));
        assert!(batch_outcome(&json!({})).is_err());
        assert_eq!(clip(&"é".repeat(400)).chars().count(), 301);
    }

    /// A stand-in for `POST /api/events` that refuses agent `gone` and checks
    /// the request is authenticated and shaped as the contract says.
    async fn fake_batch_api() -> String {
        use axum::http::HeaderMap;
        use axum::routing::post;
        let app = axum::Router::new().route(
            "/api/events",
            post(|headers: HeaderMap, body: axum::Json<Value>| async move {
                let authed = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer key");
                let events = body["events"].as_array().cloned().unwrap_or_default();
                let results: Vec<Value> = events
                    .iter()
                    .map(|e| match (e["agent_id"].as_str(), e["type"].as_str()) {
                        (Some("gone"), _) => json!({"status": 404, "error": {"code": "not_found"}}),
                        (Some(_), Some("wake_up")) if e["data"]["i"].is_u64() => {
                            json!({"status": 202, "id": "u", "seq": 1})
                        }
                        _ => json!({"status": 400, "error": {"code": "bad_event"}}),
                    })
                    .collect();
                let status = if authed { 200 } else { 401 };
                (
                    axum::http::StatusCode::from_u16(status).unwrap_or_default(),
                    axum::Json(json!({ "results": results })),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_batch_answer_gives_one_outcome_per_event_in_order() {
        let http = fake_batch_api().await;
        let client = crate::net::http_client().unwrap();
        let emitter = Emitter::nexus(&http, client.clone(), "key");
        let events = [("a1", 0), ("gone", 1), ("a2", 2)]
            .map(|(agent, i)| (agent.to_owned(), json!({"i": i, "t_ns": 5})));
        let outcomes = emitter.emit_batch(&events).await.unwrap();
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
        assert!(outcomes[1].as_ref().unwrap_err().contains("not_found"));
        let stranger = Emitter::nexus(&http, client.clone(), "wrong");
        assert!(
            stranger.emit_batch(&events).await.is_err(),
            "a 401 fails the whole batch"
        );
        assert!(
            Emitter::peer(&http, client)
                .emit_batch(&events)
                .await
                .is_err()
        );
    }
}
