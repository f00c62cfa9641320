//! `POST /webhooks/ingest/{id}`: generic senders (put.io transfer notifications and the
//! like), authenticated by HMAC (`X-Nexus-Signature: sha256=<hex>`) or a bearer token,
//! and delivered by the source's rule to an agent or an alias as an inbox event.

use axum::http::header;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::signature::verify_hex;
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
        let by_hmac = req
            .header("x-nexus-signature")
            .and_then(|v| v.strip_prefix("sha256="))
            .is_some_and(|hex| verify_hex(secret, &[req.raw], hex));
        let by_token = req
            .header(header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| bool::from(t.trim().as_bytes().ct_eq(secret.as_bytes())));
        if !by_hmac && !by_token {
            return Err(Rejection::Signature(
                "sign the body (X-Nexus-Signature: sha256=<hex HMAC>) or send the source's token as Bearer".into(),
            ));
        }
        Ok(())
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
