//! What agents send (frames) and what they receive (event frames), and the mentions read
//! from Slack text.

use chrono::{DateTime, Datelike, Utc};
use nexus_proto::client::{MAX_MESSAGE_LEN, MAX_REF_LEN};
use nexus_proto::{ClientMsg, EventFrame, EventId, EventType, Seq, ServerMsg, parse_client_frame};
use serde_json::Value;
use uuid::Uuid;

use crate::mirror::Mentions;

/// One inbound text frame, as the gateway parses it.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // WebSocket text frames are UTF-8.
    };
    let msg = match parse_client_frame(text) {
        Ok(frame) => frame.msg,
        Err(e) => {
            assert!(e.message.len() <= MAX_MESSAGE_LEN, "{e}");
            assert!(e.reference.is_none_or(|r| r.len() <= MAX_REF_LEN));
            return;
        }
    };
    // What the server accepts, an agent library re-encoding it gets accepted too.
    let again = serde_json::to_string(&msg).expect("a message serializes");
    let back = parse_client_frame(&again)
        .unwrap_or_else(|e| panic!("{again} re-encoded is refused: {e}"))
        .msg;
    match (&msg, &back) {
        // Tool arguments are free JSON: a float may come back one ulp off (serde_json
        // parses without `float_roundtrip`), which is not the parser's doing.
        (ClientMsg::ToolRequest { data: a }, ClientMsg::ToolRequest { data: b }) => {
            assert_eq!(
                (&a.request_id, &a.tool, a.timeout_ms),
                (&b.request_id, &b.tool, b.timeout_ms)
            );
        }
        _ => assert_eq!(msg, back),
    }
}

/// Text as Slack delivers it, through [`Mentions::parse`].
pub fn mentions(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let m = Mentions::parse(&text);
    assert!(m.aliases.len() + m.slack_users.len() <= Mentions::MAX_NAMES);
    for alias in &m.aliases {
        assert!(
            !alias.is_empty() && !alias.ends_with(['.', '-']),
            "{alias:?}"
        );
        assert!(
            text.contains(&format!("@{alias}")),
            "{alias:?} is not written"
        );
    }
    for user in &m.slack_users {
        assert!(text.contains(&format!("<@{user}")), "{user} is not written");
    }
}

/// Bytes of [`encode_event`]'s fixed header.
const EVENT_HEADER: usize = 38;

/// The hand-written event encoder against serde's encoding of the same event.
///
/// Layout: byte 0 — bits 0–1 the event type, bit 2 a trace id is present, bit 3 the data
/// is inserted as written (else re-encoded by serde_json, as the inbox stores it); 16
/// bytes event id; u64 LE seq; i64 LE Unix seconds (wrapped to ±253,000 years) and u32 LE
/// nanoseconds (below 2·10⁹: leap seconds); the trace id's length; the trace id; the data.
pub fn encode_event(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<EVENT_HEADER>() else {
        return;
    };
    let flags = head[0];
    let kind = EventType::ALL[usize::from(flags & 3)];
    let id = EventId::from_uuid(Uuid::from_bytes(sub(head, 1)));
    let seq = Seq::new(u64::from_le_bytes(sub(head, 17)));
    let secs = i64::from_le_bytes(sub(head, 25)) % 8_000_000_000_000;
    let nanos = u32::from_le_bytes(sub(head, 33)) % 2_000_000_000;
    let Some(ts) = DateTime::<Utc>::from_timestamp(secs, nanos) else {
        return;
    };
    let (trace, rest) = rest.split_at(usize::from(head[37]).min(rest.len()));
    let trace_id = (flags & 4 != 0).then(|| String::from_utf8_lossy(trace).into_owned());
    let (data_json, data) = match serde_json::from_slice::<Value>(rest) {
        Ok(value) if flags & 8 != 0 => (String::from_utf8_lossy(rest).into_owned(), value),
        Ok(value) => (value.to_string(), value),
        Err(_) => {
            let value = Value::String(String::from_utf8_lossy(rest).into_owned());
            (value.to_string(), value)
        }
    };

    let fast = nexus_proto::encode_event(kind, id, seq, ts, trace_id.as_deref(), &data_json);
    let frame = EventFrame {
        id,
        seq,
        ts,
        trace_id: trace_id.clone(),
        data,
    };
    let msg = ServerMsg::event(kind, frame);
    let parsed: Value = serde_json::from_str(&fast).unwrap_or_else(|e| panic!("{fast}: {e}"));
    if flags & 8 == 0 {
        // The inbox stores serde's text of the data: the frame is serde's, byte for byte.
        assert_eq!(
            fast,
            nexus_proto::encode(&msg),
            "the fast encoder and serde disagree"
        );
    } else {
        // Data as written: serde's frame around the value the text stands for. (Not
        // compared after a second trip through text: serde_json parses without
        // `float_roundtrip`, so a float's shortest text may read back one ulp off.)
        let expected = serde_json::to_value(&msg).expect("an event serializes");
        assert_eq!(parsed, expected, "the fast encoder and serde disagree");
    }
    // RFC 3339 has four-digit years: only those times read back.
    if (0..=9999).contains(&ts.year()) {
        let back: ServerMsg = serde_json::from_str(&fast).unwrap_or_else(|e| panic!("{fast}: {e}"));
        let (back_kind, back) = back.as_event().expect("an event frame");
        assert_eq!((back_kind, back.id, back.seq), (kind, id, seq));
        assert_eq!((&back.trace_id, &back.data), (&trace_id, &parsed["data"]));
        assert_eq!(back.ts.timestamp_millis(), ts.timestamp_millis(), "{fast}");
    }
}

/// `N` bytes of `head` from `at`.
fn sub<const N: usize>(head: &[u8; EVENT_HEADER], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&head[at..at + N]);
    out
}
