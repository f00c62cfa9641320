//! `POST /webhooks/slack[/{id}]`: Slack Events API.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::signature::verify_slack;
use super::{Received, Rejection, Request, Route, Sender};
use crate::providers::events::SlackEnvelope;
use crate::queue::JobKind;
use crate::store::{Source, SourceKind, Store};

pub struct Slack;

impl Sender for Slack {
    const NAME: &'static str = "slack";
    const SOURCE: SourceKind = SourceKind::Slack;
    type Body = SlackEnvelope;
    const WHAT: &'static str = "a Slack event envelope";
    const UNKNOWN: &'static str = "no Slack source is registered for this team";

    /// The payload's team. `url_verification` names none: it must come to the source's
    /// own URL, so that no request gets tried against every tenant's secret.
    async fn candidates(store: &Store, env: &SlackEnvelope) -> Result<Vec<Source>, Rejection> {
        Ok(match (env.kind.as_str(), &env.team_id) {
            ("url_verification", _) => {
                return Err(Rejection::UnknownSource(
                    "url_verification names no team: give Slack the source's own URL \
                     (/webhooks/slack/{source_id}, printed by `nexus source add`)"
                        .into(),
                ));
            }
            (_, Some(team)) => store
                .find_source(SourceKind::Slack, team)
                .await?
                .into_iter()
                .collect(),
            (_, None) => return Err(Rejection::Malformed("the event has no team_id".into())),
        })
    }

    fn verify(source: &Source, req: &Request<'_>) -> Result<(), Rejection> {
        let ts = req.header("x-slack-request-timestamp").unwrap_or("");
        let sig = req.header("x-slack-signature").unwrap_or("");
        verify_slack(source.secret.expose(), ts, sig, req.raw, req.now_s)
            .map_err(|e| Rejection::Signature(e.to_string()))
    }

    fn claims(env: &SlackEnvelope) -> Option<&str> {
        env.team_id.as_deref()
    }

    fn route(env: SlackEnvelope, _: &Request<'_>) -> Result<Route, Rejection> {
        match env.kind.as_str() {
            "url_verification" => {
                let challenge = env
                    .challenge
                    .ok_or_else(|| Rejection::Malformed("no challenge".into()))?;
                Ok(Route::Answer(Received::Verified { challenge }))
            }
            "event_callback" => {
                let event_id = env
                    .event_id
                    .filter(|id| !id.is_empty() && id.len() <= 128)
                    .ok_or_else(|| {
                        Rejection::Malformed("event_callback without event_id".into())
                    })?;
                Ok(Route::Job {
                    kind: JobKind::SlackEvent,
                    dedupe_key: event_id,
                })
            }
            // app_rate_limited and future envelope types: acknowledged, nothing to do.
            _ => Ok(Route::Answer(Received::Ignored)),
        }
    }

    /// The body less its legacy verification `token` (a credential that would otherwise
    /// sit in every stored job and in `GET /api/jobs/{id}`); the signature was checked
    /// on the raw body already. Other values are kept byte for byte.
    fn stored<'a>(env: &SlackEnvelope, raw: &'a [u8]) -> Result<Cow<'a, [u8]>, Rejection> {
        if !env.has_legacy_token() {
            return Ok(Cow::Borrowed(raw));
        }
        let mut body: BTreeMap<String, Box<RawValue>> =
            serde_json::from_slice(raw).map_err(|e| Rejection::Malformed(e.to_string()))?;
        body.remove("token");
        serde_json::to_vec(&body)
            .map(Cow::Owned)
            .map_err(|_| Rejection::Internal)
    }
}
