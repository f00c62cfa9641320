//! Every file in `fixtures/v1/` is an example a client in another language
//! may rely on. Each must parse into its message, and re-serialize to the
//! same JSON, so a change that breaks an old client's frames fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nexus_proto::{
    ClientMsg, ContextUpdate, EventData, ServerMsg, TaskAssigned, ToolResult, WakeUp, encode,
    encode_event, parse_client_frame,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Server,
    Client,
}

/// (file stem, direction). The stem is also the expected `type`.
const FIXTURES: &[(&str, Side)] = &[
    ("welcome", Side::Server),
    ("task_assigned", Side::Server),
    ("context_update", Side::Server),
    ("wake_up", Side::Server),
    ("tool_result", Side::Server),
    ("error", Side::Server),
    ("gap", Side::Server),
    ("token_expiring", Side::Server),
    ("heartbeat", Side::Client),
    ("agent_ready", Side::Client),
    ("status_update", Side::Client),
    ("tool_request", Side::Client),
    ("ack", Side::Client),
    ("resume", Side::Client),
    ("refresh", Side::Client),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1")
}

fn load(stem: &str) -> (String, Value) {
    let path = dir().join(format!("{stem}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    (text, value)
}

/// text → T → JSON equals the file; and file value → T → value → T is stable.
fn round_trip<T>(stem: &str, text: &str, value: &Value) -> T
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let msg: T =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{stem}: does not parse: {e}"));
    assert_eq!(
        &serde_json::to_value(&msg).unwrap(),
        value,
        "{stem}: re-serializes differently"
    );
    let from_value: T = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(from_value, msg, "{stem}: parses differently from a value");
    msg
}

fn typed_data<T: EventData + PartialEq + std::fmt::Debug>(stem: &str, data: &Value) {
    let typed: T = serde_json::from_value(data.clone())
        .unwrap_or_else(|e| panic!("{stem}: data does not fit its payload type: {e}"));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        data,
        "{stem}: payload re-serializes differently"
    );
}

#[test]
fn every_fixture_round_trips() {
    for &(stem, side) in FIXTURES {
        let (text, value) = load(stem);
        match side {
            Side::Server => {
                let msg: ServerMsg = round_trip(stem, &text, &value);
                assert_eq!(msg.type_name(), stem);
                assert_eq!(serde_json::from_str::<Value>(&encode(&msg)).unwrap(), value);
                if let Some((kind, frame)) = msg.as_event() {
                    assert_eq!(kind.as_str(), stem);
                    match kind {
                        TaskAssigned::KIND => typed_data::<TaskAssigned>(stem, &frame.data),
                        ContextUpdate::KIND => typed_data::<ContextUpdate>(stem, &frame.data),
                        WakeUp::KIND => typed_data::<WakeUp>(stem, &frame.data),
                        ToolResult::KIND => typed_data::<ToolResult>(stem, &frame.data),
                    }
                    let data_json = serde_json::to_string(&frame.data).unwrap();
                    let fast = encode_event(
                        kind,
                        frame.id,
                        frame.seq,
                        frame.ts,
                        frame.trace_id.as_deref(),
                        &data_json,
                    );
                    assert_eq!(
                        serde_json::from_str::<Value>(&fast).unwrap(),
                        value,
                        "{stem}: fast path"
                    );
                }
            }
            Side::Client => {
                let msg: ClientMsg = round_trip(stem, &text, &value);
                assert_eq!(msg.type_name(), stem);
                let frame = parse_client_frame(&text)
                    .unwrap_or_else(|e| panic!("{stem}: gateway refuses it: {e}"));
                assert_eq!(frame.msg, msg);
            }
        }
    }
}

#[test]
fn every_fixture_file_has_an_entry() {
    let listed: BTreeSet<String> = FIXTURES.iter().map(|(s, _)| format!("{s}.json")).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let unlisted: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        unlisted.is_empty(),
        "fixture files without a test entry: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "listed fixtures missing on disk: {missing:?}"
    );
}

/// The variant list comes from the generated schema, i.e. from the enums
/// themselves, so a new variant without a fixture fails here.
#[test]
fn every_message_variant_has_a_fixture() {
    for (side, schema, declared) in [
        (
            Side::Server,
            schemars::schema_for!(ServerMsg),
            ServerMsg::TYPES,
        ),
        (
            Side::Client,
            schemars::schema_for!(ClientMsg),
            ClientMsg::TYPES,
        ),
    ] {
        let mut from_schema = BTreeSet::new();
        collect_type_consts(&schema.to_value(), &mut from_schema);
        let with_fixture: BTreeSet<String> = FIXTURES
            .iter()
            .filter(|(_, s)| *s == side)
            .map(|(stem, _)| stem.to_string())
            .collect();
        assert_eq!(from_schema, with_fixture, "{side:?}: variants vs fixtures");
        let declared: BTreeSet<String> = declared.iter().map(|t| t.to_string()).collect();
        assert_eq!(from_schema, declared, "{side:?}: TYPES is out of date");
    }
}

fn collect_type_consts(node: &Value, out: &mut BTreeSet<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(tag)) = map
                .get("properties")
                .and_then(|p| p.get("type"))
                .and_then(|t| t.get("const"))
            {
                out.insert(tag.clone());
            }
            map.values().for_each(|v| collect_type_consts(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_type_consts(v, out)),
        _ => {}
    }
}

/// The README shows each fixture verbatim; keep it from drifting.
#[test]
fn readme_shows_every_fixture() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for &(stem, _) in FIXTURES {
        let (text, _) = load(stem);
        assert!(
            readme.contains(text.trim_end()),
            "README.md does not show fixtures/v1/{stem}.json verbatim"
        );
    }
}
