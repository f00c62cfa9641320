//! Slack and ClickUp webhooks from the body to the job that would be committed: the
//! signature, the envelope, the claim, what is stored and the dedupe key.
//!
//! Input: byte 0 — bit 0 set means "sign the request with the source's secret" (so the
//! parsing behind the check is reached; `1` in a seed file), bit 1 set means "sign the
//! body with one byte changed" (`2`); then a [`Message`]. The node's clock reads
//! [`NOW_S`]; a Slack request without `X-Slack-Request-Timestamp` gets that time.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue};
use nexus_proto::TenantId;
use uuid::Uuid;

use super::Message;
use crate::providers::events::{ClickUpWebhook, SlackEnvelope};
use crate::queue::JobKind;
use crate::store::{Secret, Source, SourceKind};
use crate::webhooks::{Admitted, MAX_DELIVERY_ID, Rejection, Route, admit_to, hmac_hex};

/// The node's clock, in Unix seconds (2023-11-14).
const NOW_S: i64 = 1_700_000_000;
const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The source's Slack team, as the seed corpus names it.
const TEAM: &str = "T024BE7LH";
/// The source's ClickUp webhook id, as the seed corpus names it.
const WEBHOOK: &str = "4b67ac88-9f3e-4d0b-a6b1-0e2f6c8d7a15";

fn source(kind: SourceKind, external_id: &str) -> Source {
    Source {
        id: Uuid::from_u128(0x0199_0000_0000_7000_8000_0000_0000_0001),
        tenant_id: TenantId::from_uuid(Uuid::from_u128(2)),
        kind,
        external_id: external_id.to_owned(),
        secret: Secret::new(SECRET),
        api_token: None,
        previous_secret: None,
        previous_secret_until: None,
        bot_user: None,
        rule: None,
        url_path: String::new(),
        callback_path: None,
        created_at: 0,
    }
}

/// What was signed: the body, or the body with one byte changed (bit 1 of the flags).
fn signed_body(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut signed = body.to_vec();
    if flags & 2 != 0
        && let Some(last) = signed.last_mut()
    {
        *last ^= 1;
    }
    signed
}

/// The request an input stands for: flags, headers — signed by `sign` over the body (or
/// a changed one) when the flags ask — and body.
fn request(data: &[u8], sign: fn(&mut HeaderMap, &[u8])) -> Option<(u8, HeaderMap, &[u8])> {
    let (&flags, rest) = data.split_first()?;
    let Message { mut headers, body } = Message::parse(rest);
    if flags & 3 != 0 {
        sign(&mut headers, &signed_body(flags, body));
    }
    Some((flags, headers, body))
}

/// Signs as Slack does, at [`NOW_S`] unless the request names its time.
fn sign_slack(headers: &mut HeaderMap, body: &[u8]) {
    if !headers.contains_key("x-slack-request-timestamp") {
        headers.insert("x-slack-request-timestamp", HeaderValue::from(NOW_S));
    }
    let sig = HeaderValue::try_from(slack_signature(headers, body)).expect("hex");
    headers.insert("x-slack-signature", sig);
}

fn sign_clickup(headers: &mut HeaderMap, body: &[u8]) {
    let mac = hmac_hex(SECRET, &[body]);
    headers.insert("x-signature", HeaderValue::try_from(mac).expect("hex"));
}

/// `POST /webhooks/slack/{source}`.
pub fn slack_webhook(data: &[u8]) {
    let Some((headers, body, admitted)) = admit_input(SourceKind::Slack, data) else {
        return;
    };
    let expected = slack_signature(&headers, body);
    assert!(
        signed(&headers, "x-slack-signature", &expected),
        "admitted unsigned"
    );
    let Some(payload) = job_payload(&admitted) else {
        return;
    };
    // The job reads the stored body as the webhook did, less the legacy token.
    let original: SlackEnvelope = serde_json::from_slice(body).expect("admitted, so parsed");
    let stored: SlackEnvelope = serde_json::from_str(&payload)
        .unwrap_or_else(|e| panic!("the job cannot read {payload}: {e}"));
    assert!(!stored.has_legacy_token(), "the token was stored");
    assert_eq!(
        (&stored.kind, &stored.team_id, &stored.event_id),
        (&original.kind, &original.team_id, &original.event_id)
    );
    let _ = stored.event();
    if let Route::Job { kind, .. } = admitted.route {
        assert_eq!(kind, JobKind::SlackEvent);
        assert_eq!(stored.kind, "event_callback");
    }
}

/// `v0=` + the HMAC Slack would send for these headers and this body.
fn slack_signature(headers: &HeaderMap, body: &[u8]) -> String {
    let ts = headers
        .get("x-slack-request-timestamp")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    format!(
        "v0={}",
        hmac_hex(SECRET, &[b"v0:", ts.as_bytes(), b":", body])
    )
}

/// `POST /webhooks/clickup/{source}`.
pub fn clickup_webhook(data: &[u8]) {
    let Some((headers, body, admitted)) = admit_input(SourceKind::Clickup, data) else {
        return;
    };
    let expected = hmac_hex(SECRET, &[body]);
    assert!(
        signed(&headers, "x-signature", &expected),
        "admitted unsigned"
    );
    let Some(payload) = job_payload(&admitted) else {
        return;
    };
    assert_eq!(
        payload.as_bytes(),
        body,
        "a ClickUp body is stored as it came"
    );
    let stored: ClickUpWebhook = serde_json::from_str(&payload)
        .unwrap_or_else(|e| panic!("the job cannot read {payload}: {e}"));
    assert_eq!(stored.webhook_id, WEBHOOK, "admitted for another webhook");
    let Route::Job { kind, .. } = admitted.route else {
        panic!("a ClickUp delivery always makes a job");
    };
    assert_eq!(kind, JobKind::ClickUpEvent);
}

/// The input's request to the source's URL, and what the webhook makes of it.
fn outcome(
    kind: SourceKind,
    data: &[u8],
) -> Option<(HeaderMap, &[u8], Result<Admitted<'static>, Rejection>)> {
    let (sign, external_id): (fn(&mut HeaderMap, &[u8]), _) = match kind {
        SourceKind::Slack => (sign_slack, TEAM),
        _ => (sign_clickup, WEBHOOK),
    };
    let (flags, headers, body) = request(data, sign)?;
    let result = admit_to(source(kind, external_id), &headers, body, NOW_S).map(|a| Admitted {
        stored: Cow::Owned(a.stored.into_owned()),
        ..a
    });
    if result.is_ok() {
        assert!(
            flags & 2 == 0 || body.is_empty(),
            "a changed body was admitted"
        );
    }
    Some((headers, body, result))
}

/// [`outcome`], when the request was admitted.
fn admit_input(kind: SourceKind, data: &[u8]) -> Option<(HeaderMap, &[u8], Admitted<'static>)> {
    let (headers, body, result) = outcome(kind, data)?;
    Some((headers, body, result.ok()?))
}

/// Whether the request's `header` is `expected`, as the check reads it (hex in any case).
fn signed(headers: &HeaderMap, header: &str, expected: &str) -> bool {
    headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// The payload of the job the webhook commits (`None` when it answers without one, or
/// refuses a body that is not UTF-8 at the commit), after checking its dedupe key.
fn job_payload(admitted: &Admitted<'_>) -> Option<String> {
    let Route::Job { dedupe_key, .. } = &admitted.route else {
        return None;
    };
    let scope = format!("{}:", admitted.source.id);
    assert!(dedupe_key.starts_with(&scope), "{dedupe_key} is not scoped");
    assert!(dedupe_key.len() > scope.len(), "an empty delivery id");
    // The key is indexed: PostgreSQL refuses rows over about 2.7 kB.
    let id_len = dedupe_key.len() - scope.len();
    assert!(id_len <= MAX_DELIVERY_ID, "a delivery id of {id_len} bytes");
    String::from_utf8(admitted.stored.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = format!("{}/fuzz/corpus/{target}/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn route(kind: SourceKind, data: &[u8]) -> Result<Option<JobKind>, Rejection> {
        let (_, _, admitted) = outcome(kind, data).expect("a request");
        Ok(match admitted?.route {
            Route::Job { kind, .. } => Some(kind),
            Route::Answer(_) => None,
        })
    }

    /// The seeds reach past the signature check, so the fuzzer starts from the parsing.
    #[test]
    fn signed_seeds_are_admitted_and_the_others_refused() {
        let slack = |name| route(SourceKind::Slack, &seed("slack_webhook", name));
        let clickup = |name| route(SourceKind::Clickup, &seed("clickup_webhook", name));
        assert!(matches!(slack("message"), Ok(Some(JobKind::SlackEvent))));
        assert!(matches!(slack("url_verification"), Ok(None)));
        assert!(matches!(
            clickup("task_status_updated"),
            Ok(Some(JobKind::ClickUpEvent))
        ));
        for refused in [
            slack("bad_signature"),
            slack("changed_body"),
            slack("stale"),
            clickup("bad_signature"),
        ] {
            assert!(
                matches!(refused, Err(Rejection::Signature(_))),
                "{refused:?}"
            );
        }
        assert!(matches!(
            slack("other_team"),
            Err(Rejection::UnknownSource(_))
        ));
    }
}
