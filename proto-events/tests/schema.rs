//! The checked-in JSON Schema must be what the types generate, so agents in
//! other languages validate against the protocol that actually ships.

use std::path::Path;

use nexus_proto::{ClientMsg, ServerMsg};
use serde_json::Value;

fn check(file: &str, schema: schemars::Schema) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    let mut generated = serde_json::to_string_pretty(&schema).unwrap();
    generated.push('\n');
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == generated,
        "{file}: schema is stale; run `UPDATE_SCHEMA=1 cargo test -p nexus-proto`"
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

/// Timestamps and ids must tell non-Rust validators what they are.
#[test]
fn schema_types_are_specific() {
    let schema = schemars::schema_for!(ServerMsg).to_value();
    let defs = &schema["$defs"];
    assert_eq!(
        defs["EventFrame"]["properties"]["ts"]["format"],
        "date-time"
    );
    assert_eq!(
        defs["TokenExpiring"]["properties"]["expires_at"]["format"],
        "date-time"
    );
    for id in ["EventId", "AgentId", "TenantId", "SessionId"] {
        assert_eq!(defs[id]["type"], "string", "{id}");
        assert_eq!(defs[id]["format"], "uuid", "{id}");
    }
    assert_eq!(defs["Seq"]["type"], "integer");
    assert_eq!(defs["Seq"]["minimum"], Value::from(0));
}
