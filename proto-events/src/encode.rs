//! Serializing server frames.
//!
//! [`encode_event`] is the hot path: the server replays and pushes events
//! from stored pieces (id, seq, ts, trace id, and the payload already as JSON
//! text), so it writes the frame straight into one pre-sized `String` instead
//! of building a `serde_json::Value` per frame. Its output has the same
//! fields in the same order as serde's, which a test checks.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::ids::{EventId, Seq};
use crate::server::{EventType, ServerMsg};
use crate::time::{TS_LEN, push_ts};

/// Sent if serializing a [`ServerMsg`] ever failed; see [`encode`].
const ENCODE_FAILED: &str =
    r#"{"type":"error","data":{"code":"internal","message":"failed to encode frame"}}"#;

/// Writes one inbox event frame.
///
/// `data_json` must be valid JSON text (as stored in the inbox); it is
/// inserted verbatim. `trace_id` is JSON-escaped.
pub fn encode_event(
    kind: EventType,
    id: EventId,
    seq: Seq,
    ts: DateTime<Utc>,
    trace_id: Option<&str>,
    data_json: &str,
) -> String {
    const FIXED: usize = r#"{"type":"","id":"","seq":,"ts":"","data":}"#.len();
    const UUID_LEN: usize = 36;
    const MAX_U64_LEN: usize = 20;
    const TRACE_FIXED: usize = r#","trace_id":"""#.len();
    let trace_len = trace_id.map_or(0, |t| TRACE_FIXED + t.len());
    let mut out = String::with_capacity(
        FIXED + kind.as_str().len() + UUID_LEN + MAX_U64_LEN + TS_LEN + trace_len + data_json.len(),
    );

    out.push_str(r#"{"type":""#);
    out.push_str(kind.as_str());
    out.push_str(r#"","id":""#);
    let mut uuid_buf = uuid::Uuid::encode_buffer();
    out.push_str(id.as_uuid().hyphenated().encode_lower(&mut uuid_buf));
    out.push_str(r#"","seq":"#);
    // Writing into a String cannot fail.
    let _ = write!(out, "{}", seq.get());
    out.push_str(r#","ts":""#);
    push_ts(&mut out, &ts);
    out.push('"');
    if let Some(trace_id) = trace_id {
        push_json_str(&mut out, ",\"trace_id\":", trace_id);
    }
    out.push_str(r#","data":"#);
    out.push_str(data_json);
    out.push('}');
    out
}

/// Appends `key` and `value` as a JSON string. Trace ids are normally plain
/// ASCII and go in as they are; anything needing escapes goes through
/// serde_json.
fn push_json_str(out: &mut String, key: &str, value: &str) {
    let plain = value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push_str(key);
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else if let Ok(escaped) = serde_json::to_string(value) {
        // Serializing a &str cannot fail; were it to, the optional field is
        // left out rather than written broken.
        out.push_str(key);
        out.push_str(&escaped);
    }
}

/// Serializes any server message.
///
/// Serialization of these types cannot fail: they hold only strings, numbers,
/// booleans, string-keyed maps and `serde_json::Value`s. Should it ever fail
/// anyway, the peer receives an `internal` error frame rather than a broken
/// frame or a panic.
pub fn encode(msg: &ServerMsg) -> String {
    serde_json::to_string(msg).unwrap_or_else(|_| ENCODE_FAILED.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::EventFrame;
    use chrono::TimeZone;
    use serde_json::{Value, json};

    fn cases() -> Vec<(EventType, Option<&'static str>, Value, DateTime<Utc>)> {
        let ts = Utc.with_ymd_and_hms(2026, 11, 22, 9, 1, 3).unwrap()
            + chrono::Duration::milliseconds(123);
        vec![
            (
                EventType::TaskAssigned,
                None,
                json!({"task": {"id": "t1"}}),
                ts,
            ),
            (
                EventType::ContextUpdate,
                Some("4bf92f3577b34da6"),
                json!({"text": "hi"}),
                ts,
            ),
            (
                EventType::WakeUp,
                Some("quote\" back\\ nl\n é \u{1}"),
                json!({"text": "ünï \"x\""}),
                ts,
            ),
            (
                EventType::ToolResult,
                Some(""),
                json!([1, null, 2.5, "s"]),
                Utc::now(),
            ),
            (
                EventType::WakeUp,
                None,
                json!(null),
                Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap(),
            ),
        ]
    }

    #[test]
    fn fast_path_matches_serde() {
        for (kind, trace_id, data, ts) in cases() {
            let id = EventId::new_v7();
            let seq = Seq::new(u64::MAX - 3);
            let data_json = serde_json::to_string(&data).unwrap();
            let fast = encode_event(kind, id, seq, ts, trace_id, &data_json);

            // Millisecond precision is the wire contract; the slow path must
            // see the same instant the fast one wrote.
            let ts = DateTime::parse_from_rfc3339(&crate::time::format_ts(&ts))
                .unwrap()
                .with_timezone(&Utc);
            let frame = EventFrame {
                id,
                seq,
                ts,
                trace_id: trace_id.map(str::to_owned),
                data,
            };
            let msg = ServerMsg::event(kind, frame);

            assert_eq!(serde_json::from_str::<ServerMsg>(&fast).unwrap(), msg);
            let slow = encode(&msg);
            assert_eq!(
                serde_json::from_str::<Value>(&fast).unwrap(),
                serde_json::from_str::<Value>(&slow).unwrap()
            );
            assert_eq!(fast, slow, "same bytes, same field order");
        }
    }

    #[test]
    fn preformatted_data_is_inserted_verbatim() {
        let ts = Utc::now();
        let text = encode_event(
            EventType::WakeUp,
            EventId::new_v7(),
            Seq::new(1),
            ts,
            None,
            r#"{ "a" : 1 }"#,
        );
        assert!(text.ends_with(r#","data":{ "a" : 1 }}"#), "{text}");
    }

    #[test]
    fn fallback_frame_is_a_valid_error() {
        let msg: ServerMsg = serde_json::from_str(ENCODE_FAILED).unwrap();
        assert_eq!(msg.type_name(), "error");
    }
}
