//! `POST /webhooks/putio/{token}`: put.io's transfer callback. put.io cannot sign its
//! callbacks, so the URL carries the source's token; the source is found by the token's
//! SHA-256 (the token is never compared, indexed or logged). The body is the transfer
//! as form fields (or the same fields as JSON); one event per transfer id.

use std::borrow::Cow;

use nexus_proto::PutioTransfer;
use serde_json::{Map, Value};

use super::{Rejection, Request, Route, Sender};
use crate::queue::JobKind;
use crate::state::AppState;
use crate::store::{Source, SourceKind, Store, putio_external_id};

pub struct Putio;

impl Sender for Putio {
    const NAME: &'static str = "putio";
    const SOURCE: SourceKind = SourceKind::Putio;
    type Body = PutioTransfer;
    const WHAT: &'static str = "a put.io transfer";
    const UNKNOWN: &'static str = "no putio source with this token";

    /// put.io sources are always named in the URL.
    async fn candidates(_: &Store, _: &PutioTransfer) -> Result<Vec<Source>, Rejection> {
        Ok(Vec::new())
    }

    async fn named(state: &AppState, token: &str) -> Result<Source, Rejection> {
        let unknown = || Rejection::UnknownSource(Self::UNKNOWN.into());
        if token.len() > MAX_TOKEN {
            return Err(unknown());
        }
        let found = state
            .store
            .find_source(SourceKind::Putio, &putio_external_id(token))
            .await?;
        found.ok_or_else(unknown)
    }

    /// The source was found by the SHA-256 of the token in the URL: only who holds the
    /// token gets here.
    fn verify(_: &Source, _: &Request<'_>) -> Result<(), Rejection> {
        Ok(())
    }

    fn claims(_: &PutioTransfer) -> Option<&str> {
        None
    }

    fn parse(raw: &[u8]) -> Result<PutioTransfer, String> {
        transfer(&fields(raw)?)
    }

    fn route(body: PutioTransfer, _: &Request<'_>) -> Result<Route, Rejection> {
        Ok(Route::Job {
            kind: JobKind::IngestDeliver,
            dedupe_key: format!("transfer:{}", body.id),
        })
    }

    /// The transfer as the event will carry it: put.io's other fields are not kept.
    fn stored<'a>(body: &PutioTransfer, _: &'a [u8]) -> Result<Cow<'a, [u8]>, Rejection> {
        serde_json::to_vec(body)
            .map(Cow::Owned)
            .map_err(|_| Rejection::Internal)
    }
}

/// Longer than any token `nexus source add` makes (43 characters), with room.
const MAX_TOKEN: usize = 128;

/// The body's fields: a JSON object, or form fields (what put.io sends).
fn fields(raw: &[u8]) -> Result<Map<String, Value>, String> {
    if raw.trim_ascii_start().starts_with(b"{") {
        return serde_json::from_slice(raw)
            .map_err(|e| format!("the body is not a JSON object: {e}"));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw)
        .map_err(|e| format!("the body is not form fields: {e}"))?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

fn transfer(fields: &Map<String, Value>) -> Result<PutioTransfer, String> {
    let id = number(fields, "id")?
        .ok_or("the body has no transfer `id`: put.io's transfer callback sends one")?;
    Ok(PutioTransfer {
        id,
        name: text(fields, "name")?,
        status: text(fields, "status")?,
        file_id: number(fields, "file_id")?,
        size: number(fields, "size")?,
        save_parent_id: number(fields, "save_parent_id")?,
        source: text(fields, "source")?,
    })
}

/// A whole number, as JSON or as form text; empty or null is absent.
fn number(fields: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    let wrong = || format!("`{name}` is not a whole number");
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| wrong()),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(wrong),
        Some(_) => Err(wrong()),
    }
}

/// Text (a number is taken as its digits); empty or null is absent.
fn text(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("`{name}` is not text")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_json_read_the_same() {
        let form = b"id=42&name=ubuntu.iso&status=COMPLETED&file_id=7&size=1024&save_parent_id=0&source=magnet%3A%3Fxt&hash=ab";
        let json = br#"{"id":42,"name":"ubuntu.iso","status":"COMPLETED","file_id":7,"size":1024,"save_parent_id":0,"source":"magnet:?xt"}"#;
        let from_form = Putio::parse(form).expect("form");
        assert_eq!(from_form, Putio::parse(json).expect("json"));
        assert_eq!(from_form.id, 42);
        assert_eq!(from_form.source.as_deref(), Some("magnet:?xt"));
    }

    #[test]
    fn an_id_is_required_and_numbers_are_checked() {
        assert!(
            Putio::parse(b"name=x")
                .unwrap_err()
                .contains("no transfer `id`")
        );
        assert!(Putio::parse(b"id=&name=x").is_err());
        assert!(
            Putio::parse(b"id=12&size=big")
                .unwrap_err()
                .contains("`size`")
        );
        assert!(Putio::parse(br#"{"id":-1}"#).is_err());
        assert!(Putio::parse(b"{not json").is_err());
    }
}
