//! `deliver --via slack|clickup`: the node gets a webhook source and every
//! agent a provider identity, so events can go in as signed webhooks.

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{Fixture, Server};
use crate::fake_clickup::{self, FakeClickUp};
use crate::target::Target;
use crate::webhooks::{ClickUpRoute, Route, SlackRoute, clickup_user, slack_user};

impl Server {
    /// Registers a Slack source and gives each agent a Slack user (`U` + its id), so
    /// `emit_agent` can reach it through `POST /webhooks/slack/{source}` as a mention:
    /// the whole webhook path (signature, job, Slack processor, inbox) is measured.
    pub async fn route_via_slack(&mut self, fixture: &Fixture) -> Result<()> {
        let secret = format!("lt-signing-{}", uuid::Uuid::new_v4().simple());
        let team = format!(
            "TLT{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
        );
        let source_args = [
            "--kind",
            "slack",
            "--team-id",
            &team,
            "--signing-secret",
            &secret,
        ];
        let url = self.add_source(fixture, &source_args).await?;
        self.add_identities(fixture, "slack", slack_user).await?;
        self.route = Some(Route::Slack(SlackRoute { url, team, secret }));
        Ok(())
    }

    /// Registers a ClickUp source reading tasks from `api`, maps its list, and gives
    /// each agent a ClickUp user: `emit_agent` then posts a signed `taskCreated` for a
    /// new task assigned to the agent, and Nexus reads the task, maps it and assigns
    /// it (`task_assigned`) — the whole ClickUp path.
    pub async fn route_via_clickup(&mut self, fixture: &Fixture, api: &FakeClickUp) -> Result<()> {
        let secret = format!("lt-webhook-{}", uuid::Uuid::new_v4().simple());
        let webhook_id = uuid::Uuid::new_v4().to_string();
        let source_args = [
            "--kind",
            "clickup",
            "--webhook-id",
            &webhook_id,
            "--secret",
            &secret,
            "--api-token",
            &api.token,
        ];
        let url = self.add_source(fixture, &source_args).await?;
        let env = self.node.as_ref().context("no node")?;
        env.cli(&[
            "mapping",
            "add",
            "--tenant",
            &fixture.tenant_id,
            "--clickup-list",
            fake_clickup::LIST,
            "--slack-channel",
            "CLOADTEST",
            "--no-open-threads",
        ])
        .await?;
        self.add_identities(fixture, "clickup", |agent| clickup_user(agent).to_string())
            .await?;
        self.route = Some(Route::Clickup(ClickUpRoute {
            url,
            webhook_id,
            secret,
        }));
        Ok(())
    }

    /// `nexus source add --tenant … ARGS`; returns the source's webhook URL.
    async fn add_source(&self, fixture: &Fixture, args: &[&str]) -> Result<String> {
        let (Target::Nexus, Some(env)) = (self.target, &self.node) else {
            bail!(
                "webhook routes need a Nexus node this tool provisions (no --url without --database-url)"
            );
        };
        let mut cli = vec!["source", "add", "--tenant", &fixture.tenant_id];
        cli.extend_from_slice(args);
        let source = env.cli(&cli).await?;
        let path = source
            .first()
            .and_then(|s| s["url_path"].as_str())
            .context("source add printed no url_path")?;
        Ok(format!("{}{path}", self.http))
    }

    /// Gives every agent a `provider` user, through the REST API.
    async fn add_identities(
        &self,
        fixture: &Fixture,
        provider: &str,
        user: impl Fn(&str) -> String,
    ) -> Result<()> {
        use futures_util::StreamExt;
        let key = self
            .operator_key
            .as_ref()
            .context("no operator key: provision first")?;
        let url = format!("{}/api/tenants/{}/identities", self.http, fixture.tenant_id);
        let posts = fixture.agent_ids.iter().map(|agent| {
            let req = self.client.post(&url).bearer_auth(key).json(&json!({
                "agent_id": agent, "provider": provider, "external_user_id": user(agent),
            }));
            async move {
                let resp = req.send().await?;
                if !resp.status().is_success() {
                    bail!("{provider} identity for {agent}: {}", resp.status());
                }
                anyhow::Ok(())
            }
        });
        futures_util::stream::iter(posts)
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        Ok(())
    }
}
