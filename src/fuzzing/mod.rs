//! Entry points of the fuzz targets in `fuzz/` (`cargo +nightly fuzz run NAME`, see
//! `fuzz/README.md`). Each takes the fuzzer's bytes, drives the code that a request or a
//! frame from outside reaches — the same functions the handlers call — and panics when an
//! invariant breaks. A unit test below replays every committed corpus and regression file
//! through them, so `cargo test` keeps what the fuzzer once found fixed.
//!
//! Structured inputs are written like an HTTP message so that seed files stay readable:
//! header lines `name: value`, an empty line, then the body (see [`Message`]).

mod proto;
mod webhooks;

pub use proto::{client_frame, encode_event, mentions};
pub use webhooks::{clickup_webhook, slack_webhook};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;

use crate::providers::{self, ProviderError};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by its `fuzz/fuzz_targets/` name.
pub const TARGETS: &[(&str, Target)] = &[
    ("client_frame", client_frame),
    ("slack_webhook", slack_webhook),
    ("clickup_webhook", clickup_webhook),
    ("mentions", mentions),
    ("oauth", oauth),
    ("encode_event", encode_event),
    ("provider_response", provider_response),
];

/// Header lines up to the first empty line, then the body. Without an empty line the
/// whole input is the body. Lines that make no valid header are skipped.
struct Message<'a> {
    headers: HeaderMap,
    body: &'a [u8],
}

impl<'a> Message<'a> {
    fn parse(data: &'a [u8]) -> Message<'a> {
        let Some(end) = data.windows(2).position(|w| w == b"\n\n") else {
            return Message {
                headers: HeaderMap::new(),
                body: data,
            };
        };
        let mut headers = HeaderMap::new();
        for line in data[..end].split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let value = line[colon + 1..].trim_ascii();
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        Message {
            headers,
            body: &data[end + 2..],
        }
    }
}

/// `POST /auth/token`: a [`Message`] (`Content-Type`, `Authorization: Basic …`, a form or
/// JSON body) through the credential parsing; a refusal must be a 4xx OAuth answer.
pub fn oauth(data: &[u8]) {
    let msg = Message::parse(data);
    if let Err(e) = crate::auth::client_credentials(&msg.headers, msg.body) {
        let status = e.into_response().status();
        assert!(status.is_client_error(), "refused with {status}");
    }
}

/// A provider's answer: the first byte picks the call (Slack `chat.postMessage`, ClickUp
/// task, ClickUp comment), then the status code on a line of its own, then a [`Message`]
/// (`Retry-After`, the body), classified and parsed as the clients do.
pub fn provider_response(data: &[u8]) {
    let Some((&call, rest)) = data.split_first() else {
        return;
    };
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let Ok(status) = StatusCode::from_bytes(rest[..line_end].trim_ascii()) else {
        return;
    };
    let msg = Message::parse(rest.get(line_end + 1..).unwrap_or_default());
    let provider = ["Slack", "ClickUp", "ClickUp"][usize::from(call % 3)];
    let worth_retry = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    let answer = match providers::refused(provider, status, &msg.headers) {
        Err(e) => {
            assert!(worth_retry, "{status} refused before its body: {e}");
            let ProviderError::Transient { retry_after_ms, .. } = e else {
                panic!("{status} is not transient: {e}");
            };
            // The provider's word is capped: a job is never parked for longer.
            assert!(retry_after_ms.is_none_or(|ms| ms <= 15 * 60 * 1000));
            return;
        }
        Ok(()) => providers::answer(provider, status, msg.body),
    };
    assert!(!worth_retry, "{status} was let through to its body");
    let value = match answer {
        Ok(value) => value,
        Err(e) => {
            let permanent = matches!(e, ProviderError::Permanent { .. });
            assert_eq!(permanent, !status.is_success(), "{status}: {e}");
            // An error body is quoted in job errors only as an excerpt.
            assert!(e.to_string().chars().count() < 300, "{e}");
            return;
        }
    };
    let _ = match call % 3 {
        0 => providers::posted(value).map(drop),
        1 => providers::task(value).map(drop),
        _ => providers::comment_id(&value).map(drop),
    };
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The committed corpus of every target, and every crash the fuzzer found, replayed.
    #[test]
    fn committed_fuzz_inputs_replay_without_a_panic() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut failed = Vec::new();
        for (name, target) in TARGETS {
            let seeds = files(&fuzz.join("corpus").join(name));
            assert!(!seeds.is_empty(), "no seed corpus for {name}");
            let found = files(&fuzz.join("regressions").join(name));
            for file in seeds.iter().chain(&found) {
                let data = std::fs::read(file).expect("read a corpus file");
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failed.push(file.display().to_string());
                }
            }
        }
        assert!(failed.is_empty(), "panicked on {failed:#?}");
    }

    fn files(dir: &Path) -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<_> = entries
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_message_is_headers_then_body() {
        let msg = Message::parse(b"Content-Type: text/plain\nbad line\nX-A:  1 \n\n{\"a\":\n\n1}");
        assert_eq!(msg.headers.len(), 2);
        assert_eq!(msg.headers["x-a"], "1");
        assert_eq!(msg.body, b"{\"a\":\n\n1}");
        assert_eq!(Message::parse(b"no headers").body, b"no headers");
    }
}
