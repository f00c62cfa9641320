//! The checked-in JSON Schema is generated from the types; this test fails when it
//! is stale. Regenerate with `UPDATE_SCHEMA=1 cargo test -p nexus-proto`.

use std::path::PathBuf;

use nexus_proto::{ClientMsg, ServerMsg};
use serde_json::Value;

fn check(file: &str, schema: schemars::Schema) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    let fresh = format!("{}\n", serde_json::to_string_pretty(&schema).unwrap());
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "schema/{file} is stale; run `UPDATE_SCHEMA=1 cargo test -p nexus-proto` and commit it"
    );
}

#[test]
fn server_schema_is_current() {
    check("server.v1.json", schemars::schema_for!(ServerMsg));
}

#[test]
fn client_schema_is_current() {
    check("client.v1.json", schemars::schema_for!(ClientMsg));
}

#[test]
fn schema_names_every_message_type() {
    let schema: Value = serde_json::to_value(schemars::schema_for!(ServerMsg)).unwrap();
    let text = schema.to_string();
    for t in ServerMsg::TYPES {
        assert!(
            text.contains(&format!("\"{t}\"")),
            "server schema lacks {t}"
        );
    }
    let text = serde_json::to_value(schemars::schema_for!(ClientMsg))
        .unwrap()
        .to_string();
    for t in ClientMsg::TYPES {
        assert!(
            text.contains(&format!("\"{t}\"")),
            "client schema lacks {t}"
        );
    }
}
