//! Every v1 message has a fixture; every fixture parses into its message and
//! serializes back to the same JSON. An old client's frames keep parsing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use nexus_proto::{ClientMsg, ServerMsg, parse_client_frame};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1")
}

fn load(name: &str) -> (String, Value) {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}.json is not JSON: {e}"));
    (text, value)
}

#[test]
fn server_fixtures_round_trip() {
    for name in ServerMsg::TYPES {
        let (text, value) = load(name);
        let msg: ServerMsg = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.type_name(), *name, "{name}.json holds another message");
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            value,
            "{name}: Rust → JSON differs"
        );
        let back: ServerMsg = serde_json::from_value(value).unwrap();
        assert_eq!(back, msg, "{name}: JSON → Rust differs");
    }
}

#[test]
fn client_fixtures_round_trip() {
    for name in ClientMsg::TYPES {
        let (text, value) = load(name);
        let frame = parse_client_frame(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = serde_json::to_value(&frame.msg).unwrap();
        assert_eq!(json["type"], *name, "{name}.json holds another message");
        assert_eq!(json, value, "{name}: Rust → JSON differs");
        assert_eq!(
            serde_json::from_value::<ClientMsg>(value).unwrap(),
            frame.msg
        );
    }
}

#[test]
fn every_fixture_is_a_known_message_and_every_message_has_one() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = ServerMsg::TYPES
        .iter()
        .chain(ClientMsg::TYPES)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(on_disk, known);
}
