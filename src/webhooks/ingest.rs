//! `POST /webhooks/ingest/{id}`: generic senders (feeds, scripts, CI jobs and the
//! like), authenticated by a timestamped HMAC over the idempotency key and the body
//! (`X-Nexus-Timestamp`, `X-Nexus-Signature: v1=<hex>`) or a bearer token, and delivered
//! by the source's rule to an agent or an alias as an inbox event.

use axum::http::header;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::signature::verify_stamped;
use super::{Rejection, Request, Route, Sender, sha256_hex};
use crate::queue::JobKind;
use crate::store::{Source, SourceKind, Store};

pub struct Ingest;

impl Sender for Ingest {
    const NAME: &'static str = "ingest";
    const SOURCE: SourceKind = SourceKind::Ingest;
    type Body = Value;
    const WHAT: &'static str = "JSON";
    const UNKNOWN: &'static str = "no ingest source with this id";

    /// Ingest sources are always named in the URL.
    async fn candidates(_: &Store, _: &Value) -> Result<Vec<Source>, Rejection> {
        Ok(Vec::new())
    }

    fn verify(source: &Source, req: &Request<'_>) -> Result<(), Rejection> {
        let secret = source.secret.expose();
        if let Some(token) = req
            .header(header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return match bool::from(token.trim().as_bytes().ct_eq(secret.as_bytes())) {
                true => Ok(()),
                false => Err(Rejection::Signature(
                    "the bearer token is not the source's".into(),
                )),
            };
        }
        let (Some(ts), Some(sig)) = (
            req.header("x-nexus-timestamp"),
            req.header("x-nexus-signature"),
        ) else {
            return Err(Rejection::Signature(
                "send X-Nexus-Timestamp (Unix seconds) and X-Nexus-Signature: v1=<hex HMAC-SHA256 of \
                 v1:{timestamp}:{Idempotency-Key or empty}:{body}>, or the source's token as Bearer"
                    .into(),
            ));
        };
        let key = req.header("idempotency-key").unwrap_or_default();
        verify_stamped(secret, "v1", ts, sig, &[key.as_bytes(), req.raw], req.now_s)
            .map_err(|e| Rejection::Signature(e.to_string()))
    }

    fn claims(_: &Value) -> Option<&str> {
        None
    }

    fn route(_: Value, req: &Request<'_>) -> Result<Route, Rejection> {
        let key = match req.header("idempotency-key") {
            Some(k) if !k.is_empty() && k.len() <= 200 => k.to_owned(),
            Some(_) => {
                return Err(Rejection::Malformed(
                    "Idempotency-Key must be 1–200 characters".into(),
                ));
            }
            None => sha256_hex(req.raw),
        };
        Ok(Route::Job {
            kind: JobKind::IngestDeliver,
            dedupe_key: key,
        })
    }
}
