//! `POST /webhooks/clickup[/{id}]`: ClickUp webhooks, signed with `X-Signature`.

use super::signature::verify_hex;
use super::{Rejection, Request, Route, Sender, sha256_hex};
use crate::providers::events::ClickUpWebhook;
use crate::queue::JobKind;
use crate::store::{Source, SourceKind, Store};

pub struct ClickUp;

impl Sender for ClickUp {
    const NAME: &'static str = "clickup";
    const SOURCE: SourceKind = SourceKind::Clickup;
    type Body = ClickUpWebhook;
    const WHAT: &'static str = "a ClickUp webhook payload";
    const UNKNOWN: &'static str = "no ClickUp source is registered for this webhook_id";

    async fn candidates(store: &Store, body: &ClickUpWebhook) -> Result<Vec<Source>, Rejection> {
        let found = store
            .find_source(SourceKind::Clickup, &body.webhook_id)
            .await?;
        Ok(found.into_iter().collect())
    }

    fn verify(source: &Source, req: &Request<'_>) -> Result<(), Rejection> {
        let signature = req
            .header("x-signature")
            .ok_or_else(|| Rejection::Signature("missing X-Signature".into()))?;
        if !verify_hex(source.secret.expose(), &[req.raw], signature) {
            return Err(Rejection::Signature("the signature does not match".into()));
        }
        Ok(())
    }

    fn claims(payload: &ClickUpWebhook) -> Option<&str> {
        Some(&payload.webhook_id)
    }

    fn route(payload: ClickUpWebhook, req: &Request<'_>) -> Result<Route, Rejection> {
        // ClickUp retries resend the same history items: they identify the delivery.
        let mut items: Vec<&str> = payload
            .history_items
            .iter()
            .map(|h| h.id.as_str())
            .collect();
        items.sort_unstable();
        let dedupe_key = if items.is_empty() {
            format!(
                "{}:{}:{}:{}",
                payload.webhook_id,
                payload.event,
                payload.task_id.as_ref().map_or("", |t| t.as_str()),
                sha256_hex(req.raw)
            )
        } else {
            format!("{}:{}", payload.webhook_id, items.join(","))
        };
        Ok(Route::Job {
            kind: JobKind::ClickUpEvent,
            dedupe_key,
        })
    }
}
