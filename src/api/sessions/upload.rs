//! What `POST /api/sessions` and `PUT …/parts/{n}` accept: bodies decoded (gzip or
//! identity, bounded by their decoded size), fields checked one by one so a refusal
//! names every bad field, transcripts compressed for storage.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use axum::http::{HeaderMap, StatusCode, header};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::http::ApiError;
use crate::store::{ModelUsage, Part};

/// Largest transcript, or transcript part, decoded (the "1 MB").
pub const MAX_TRANSCRIPT_BYTES: usize = 1024 * 1024;
/// Largest `POST /api/sessions` body, decoded: a whole transcript, escaped as JSON
/// (up to 6 bytes a character), plus the other fields.
pub const MAX_UPLOAD_BYTES: usize = 7 * MAX_TRANSCRIPT_BYTES;
/// Most parts a session may be uploaded in: 1 GiB of transcript.
pub const MAX_PARTS: u32 = 1024;
const MAX_MODELS: usize = 100;
const MAX_METADATA_BYTES: usize = 64 * 1024;
/// A session may not start later than this after the node's clock (skewed clocks).
const FUTURE_SLACK_MS: i64 = 86_400_000;

/// The request body, decoded per `Content-Encoding`: `gzip` or none. Past `limit`
/// decoded bytes it is a 413 naming `what`, without decoding the rest.
pub fn decode(
    headers: &HeaderMap,
    raw: &[u8],
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the {what} is over {limit} bytes decoded"),
        )
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") if raw.len() > limit => Err(too_large()),
        None | Some("identity") => Ok(raw.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            GzDecoder::new(raw)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::bad_request(format!("the body is not valid gzip: {e}")))?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out)
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Encoding {other:?} is not accepted: send gzip or none"),
        )),
    }
}

/// Part `n` of a transcript, compressed for storage.
pub fn compress(n: u32, text: &[u8]) -> Part {
    let mut gz = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::fast());
    // Writing to a Vec cannot fail.
    let data = gz
        .write_all(text)
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    Part {
        n,
        bytes: text.len() as u64,
        data,
    }
}

/// A stored part, decoded for streaming back.
pub fn decompress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// An upload's fields, checked.
#[derive(Debug)]
pub struct Upload {
    pub session_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub source: String,
    pub started_at: i64,
    pub ended_at: i64,
    pub cost_usd: Option<f64>,
    pub metadata: Option<String>,
    pub usage: Vec<ModelUsage>,
    /// The transcript (uploaded whole), or how many parts will follow.
    pub transcript: Transcript,
}

#[derive(Debug)]
pub enum Transcript {
    Whole(String),
    Parts(u32),
}

/// Collects every bad field before answering.
#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    fn bad(&mut self, field: &'static str, why: impl Into<String>) {
        self.0.push((field, why.into()));
    }
}

/// Checks the body of `POST /api/sessions`, at `now_ms`.
pub fn parse(body: &[u8], now_ms: i64) -> Result<Upload, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let mut f = Fields::default();
    let session_id = uuid(&obj, "session_id", true, &mut f);
    let agent_id = uuid(&obj, "agent_id", false, &mut f);
    let source = match obj.get("source") {
        Some(Value::String(s)) if valid_source(s) => s.clone(),
        Some(_) => {
            f.bad(
                "source",
                "must be 1–64 characters of a–z, 0–9, '.', '_' or '-' (e.g. claude-code)",
            );
            String::new()
        }
        None => {
            f.bad("source", "is required");
            String::new()
        }
    };
    let started_at = time(&obj, "started_at", &mut f);
    let ended_at = time(&obj, "ended_at", &mut f);
    if let (Some(s), Some(e)) = (started_at, ended_at) {
        if e < s {
            f.bad("ended_at", "is before started_at");
        }
        if s > now_ms + FUTURE_SLACK_MS {
            f.bad("started_at", "is more than a day in the future");
        }
    }
    let usage = usage(obj.get("usage"), &mut f);
    let cost_usd = match obj.get("cost_usd") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(c) if c.is_finite() && c >= 0.0 => Some(c),
            _ => {
                f.bad("cost_usd", "must be a number of at least 0");
                None
            }
        },
    };
    let metadata = metadata(obj.get("metadata"), &mut f);
    let transcript = transcript(&obj, &mut f)?;
    if !f.0.is_empty() {
        return Err(ApiError::invalid_fields(f.0));
    }
    Ok(Upload {
        session_id: session_id.unwrap_or_default(),
        agent_id,
        source,
        started_at: started_at.unwrap_or_default(),
        ended_at: ended_at.unwrap_or_default(),
        cost_usd,
        metadata,
        usage,
        transcript: transcript.unwrap_or(Transcript::Parts(0)),
    })
}

fn valid_source(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn uuid(
    obj: &Map<String, Value>,
    field: &'static str,
    required: bool,
    f: &mut Fields,
) -> Option<Uuid> {
    match obj.get(field) {
        None | Some(Value::Null) if !required => None,
        None => {
            f.bad(field, "is required");
            None
        }
        Some(v) => match v.as_str().and_then(|s| s.parse::<Uuid>().ok()) {
            Some(id) => Some(id),
            None => {
                f.bad(field, "must be a UUID");
                None
            }
        },
    }
}

fn time(obj: &Map<String, Value>, field: &'static str, f: &mut Fields) -> Option<i64> {
    let Some(v) = obj.get(field) else {
        f.bad(field, "is required");
        return None;
    };
    let parsed = v
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis());
    if parsed.is_none() {
        f.bad(field, "must be an RFC 3339 time, like 2026-12-01T09:30:00Z");
    }
    parsed
}

fn usage(v: Option<&Value>, f: &mut Fields) -> Vec<ModelUsage> {
    let Some(Value::Array(items)) = v else {
        f.bad("usage", "is required: a list of {model, input_tokens, output_tokens, cache_read_tokens?, cache_write_tokens?} (may be empty)");
        return Vec::new();
    };
    if items.len() > MAX_MODELS {
        f.bad("usage", format!("lists more than {MAX_MODELS} models"));
        return Vec::new();
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let count = |name: &str, required: bool| match item.get(name) {
            None if !required => Some(0),
            v => v.and_then(Value::as_u64),
        };
        let model = item
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let parsed = (
            count("input_tokens", true),
            count("output_tokens", true),
            count("cache_read_tokens", false),
            count("cache_write_tokens", false),
        );
        let (Some(input), Some(output), Some(read), Some(write)) = parsed else {
            f.bad("usage", "each entry's token counts must be whole numbers of at least 0 (input_tokens and output_tokens required)");
            return Vec::new();
        };
        if model.is_empty() || model.len() > 128 || model.chars().any(char::is_control) {
            f.bad(
                "usage",
                "each entry needs a model name of 1–128 printable characters",
            );
            return Vec::new();
        }
        if !seen.insert(model) {
            f.bad("usage", format!("model {model:?} is listed twice"));
            return Vec::new();
        }
        out.push(ModelUsage {
            model: model.to_owned(),
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
        });
    }
    out
}

fn metadata(v: Option<&Value>, f: &mut Fields) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(m @ Value::Object(_)) => {
            let text = m.to_string();
            if text.len() > MAX_METADATA_BYTES {
                f.bad("metadata", format!("is over {MAX_METADATA_BYTES} bytes"));
            }
            Some(text)
        }
        Some(_) => {
            f.bad("metadata", "must be a JSON object");
            None
        }
    }
}

/// The transcript whole, or the number of parts to follow; one of them. Too long a
/// transcript is a 413 of its own.
fn transcript(obj: &Map<String, Value>, f: &mut Fields) -> Result<Option<Transcript>, ApiError> {
    match (obj.get("transcript"), obj.get("parts")) {
        (Some(Value::String(t)), None) if t.len() > MAX_TRANSCRIPT_BYTES => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the transcript is over {MAX_TRANSCRIPT_BYTES} bytes: upload it in parts (\"parts\": N, then PUT /api/sessions/{{id}}/parts/{{n}})"
            ),
        )),
        (Some(Value::String(t)), None) => Ok(Some(Transcript::Whole(t.clone()))),
        (None, Some(p)) => match p.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=MAX_PARTS).contains(&n) => Ok(Some(Transcript::Parts(n))),
            _ => {
                f.bad(
                    "parts",
                    format!("must be a whole number from 1 to {MAX_PARTS}"),
                );
                Ok(None)
            }
        },
        (Some(_), None) => {
            f.bad("transcript", "must be a string");
            Ok(None)
        }
        (None, None) => {
            f.bad(
                "transcript",
                "is required (or \"parts\": N to upload it in parts)",
            );
            Ok(None)
        }
        (Some(_), Some(_)) => {
            f.bad(
                "parts",
                "give the transcript or a number of parts, not both",
            );
            Ok(None)
        }
    }
}
