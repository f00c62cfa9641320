//! Reading a session file in one streaming pass of bounded lines, gathering what its
//! upload announces: its id, when it started and ended, and the tokens per model.
//! Formats are per source and pluggable: each is a [`LineParser`] named in
//! [`parser`].

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A line longer than this is not parsed (a transcript line holding a whole file the
/// agent read): it is still uploaded, but reading it whole would cost its size in memory.
const MAX_LINE: usize = 4 << 20;

/// Tokens one model used, as `POST /api/sessions` takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// What one pass over a session file found.
#[derive(Debug, Default)]
pub struct Summary {
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    pub usage: BTreeMap<String, ModelUsage>,
    /// Lines too long to parse (uploaded all the same).
    pub skipped_lines: u64,
}

impl Summary {
    fn saw_time(&mut self, at: DateTime<Utc>) {
        self.started = Some(self.started.map_or(at, |s| s.min(at)));
        self.ended = Some(self.ended.map_or(at, |e| e.max(at)));
    }
}

/// One session format: reads each complete line into the summary.
pub trait LineParser: Send {
    /// The `source` its sessions are uploaded with (`claude-code`, …).
    fn source(&self) -> &'static str;
    fn line(&mut self, line: &[u8], summary: &mut Summary);
}

/// The formats the worker reads, by the name the configuration uses.
pub const FORMATS: [&str; 2] = ["claude-code", "plain"];

/// A fresh parser for `format`, or `None` when no format has that name.
pub fn parser(format: &str) -> Option<Box<dyn LineParser>> {
    match format {
        "claude-code" => Some(Box::new(ClaudeCode::default())),
        "plain" => Some(Box::new(Plain)),
        _ => None,
    }
}

/// Reads the first `len` bytes of `path` (what the scan saw; the file may grow
/// meanwhile) line by line with `parser`.
pub fn summarize(path: &Path, len: u64, parser: &mut dyn LineParser) -> io::Result<Summary> {
    let file = std::fs::File::open(path)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file.take(len));
    let mut summary = Summary::default();
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        if !too_long && line.len() + chunk.len() <= MAX_LINE {
            line.extend_from_slice(chunk);
        } else {
            too_long = true;
            line.clear();
        }
        let used = newline.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            end_line(&mut line, &mut too_long, parser, &mut summary);
        }
    }
    end_line(&mut line, &mut too_long, parser, &mut summary);
    Ok(summary)
}

fn end_line(
    line: &mut Vec<u8>,
    too_long: &mut bool,
    parser: &mut dyn LineParser,
    summary: &mut Summary,
) {
    if *too_long {
        summary.skipped_lines += 1;
    } else if !line.is_empty() {
        parser.line(line, summary);
    }
    line.clear();
    *too_long = false;
}

/// Claude Code's JSONL: one JSON object per line with `sessionId`, `timestamp` and, on
/// assistant lines, `message.model` and `message.usage`. One API response is written as
/// several lines (one per content block) repeating its usage, so usage is counted once
/// per `message.id` (and `requestId`).
#[derive(Default)]
pub struct ClaudeCode {
    seen: HashSet<String>,
}

#[derive(Deserialize)]
struct CcLine {
    timestamp: Option<String>,
    #[serde(rename = "requestId")]
    request_id: Option<String>,
    message: Option<CcMessage>,
}

#[derive(Deserialize)]
struct CcMessage {
    id: Option<String>,
    model: Option<String>,
    usage: Option<CcUsage>,
}

#[derive(Deserialize)]
struct CcUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
}

impl LineParser for ClaudeCode {
    fn source(&self) -> &'static str {
        "claude-code"
    }

    fn line(&mut self, line: &[u8], summary: &mut Summary) {
        // Lines of other shapes (or broken ones) carry nothing to count.
        let Ok(parsed) = serde_json::from_slice::<CcLine>(line) else {
            return;
        };
        if let Some(at) = parsed.timestamp.and_then(|t| t.parse().ok()) {
            summary.saw_time(at);
        }
        let Some(CcMessage {
            id,
            model: Some(model),
            usage: Some(u),
        }) = parsed.message
        else {
            return;
        };
        if let Some(id) = id {
            let key = format!("{id}/{}", parsed.request_id.unwrap_or_default());
            if !self.seen.insert(key) {
                return;
            }
        }
        let tokens = [
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
        ];
        // Claude Code's `<synthetic>` messages (and other empty ones) used nothing.
        if tokens.iter().all(|&t| t == 0) || model.len() > 128 {
            return;
        }
        let sum = summary
            .usage
            .entry(model.clone())
            .or_insert_with(|| ModelUsage {
                model,
                ..ModelUsage::default()
            });
        sum.input_tokens += u.input_tokens;
        sum.output_tokens += u.output_tokens;
        sum.cache_read_tokens += u.cache_read_input_tokens;
        sum.cache_write_tokens += u.cache_creation_input_tokens;
    }
}

/// Any text: uploaded as is, with no usage; its times are the file's.
pub struct Plain;

impl LineParser for Plain {
    fn source(&self) -> &'static str {
        "custom"
    }

    fn line(&mut self, _: &[u8], _: &mut Summary) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn summary_of(text: &[u8], format: &str) -> Summary {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text).expect("write");
        let mut parser = parser(format).expect("format");
        summarize(file.path(), text.len() as u64, parser.as_mut()).expect("read")
    }

    #[test]
    fn claude_code_usage_is_counted_once_per_response() {
        let text = br#"{"type":"user","sessionId":"0b0c1c8e-7a39-4c55-9d6a-1d2b3c4d5e6f","timestamp":"2026-11-30T10:00:00Z","message":{"role":"user","content":"hi"}}
{"type":"assistant","requestId":"r1","timestamp":"2026-11-30T10:00:05Z","message":{"id":"m1","model":"claude-sonnet-4-5","usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":7}}}
{"type":"assistant","requestId":"r1","timestamp":"2026-11-30T10:00:06Z","message":{"id":"m1","model":"claude-sonnet-4-5","usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":7}}}
not json at all
{"type":"assistant","requestId":"r2","timestamp":"2026-11-30T10:01:00Z","message":{"id":"m2","model":"claude-haiku-4-5","usage":{"input_tokens":3,"output_tokens":2}}}
{"type":"assistant","timestamp":"2026-11-30T09:59:00Z","message":{"id":"m3","model":"<synthetic>","usage":{"input_tokens":0,"output_tokens":0}}}
"#;
        let s = summary_of(text, "claude-code");
        assert_eq!(
            s.started.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-30T09:59:00+00:00")
        );
        assert_eq!(
            s.ended.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-30T10:01:00+00:00")
        );
        let sonnet = &s.usage["claude-sonnet-4-5"];
        assert_eq!(
            (
                sonnet.input_tokens,
                sonnet.output_tokens,
                sonnet.cache_read_tokens,
                sonnet.cache_write_tokens
            ),
            (10, 5, 100, 7)
        );
        assert_eq!(s.usage["claude-haiku-4-5"].output_tokens, 2);
        assert_eq!(s.usage.len(), 2, "the synthetic message used nothing");
    }

    #[test]
    fn a_line_over_the_bound_is_skipped_and_the_rest_read() {
        let mut text = b"{\"timestamp\":\"2026-11-30T10:00:00Z\",\"x\":\"".to_vec();
        text.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        text.extend_from_slice(b"\"}\n{\"timestamp\":\"2026-11-30T11:00:00Z\"}");
        let s = summary_of(&text, "claude-code");
        assert_eq!(s.skipped_lines, 1);
        assert_eq!(
            s.started, s.ended,
            "only the short last line (no newline) was read"
        );
        assert!(s.ended.is_some());
    }
}
