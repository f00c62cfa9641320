"""The SDK's types and encoder against proto-events: its fixtures, schemas and payload types.

A protocol change that breaks these fails CI here as well as in the Rust crate.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from typing import Any

import pytest

from nexus_agent import events, frames
from nexus_agent.auth import http_base, ws_base
from nexus_agent.events import (
    CONTROL_TYPES,
    EVENT_TYPES,
    Event,
    UnknownControl,
    UnknownEvent,
    parse_frame,
)

from .conftest import FIXTURES, REPO, SCHEMAS

SERVER = json.loads((SCHEMAS / "server.v1.json").read_text())
CLIENT = json.loads((SCHEMAS / "client.v1.json").read_text())
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))


def frame_types(schema: dict[str, Any]) -> set[str]:
    return {branch["properties"]["type"]["const"] for branch in schema["oneOf"]}


def field_names(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.name not in ("raw", "type")}


def optional_fields(cls: type[Any]) -> set[str]:
    hints = typing.get_type_hints(cls)
    return {name for name, tp in hints.items() if type(None) in typing.get_args(tp)}


def encode(kind: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """The fixture's frame as the SDK's encoder writes it."""
    d = data or {}
    build = {
        "heartbeat": lambda: frames.heartbeat(),
        "agent_ready": lambda: frames.agent_ready(d["capabilities"]),
        "status_update": lambda: frames.status_update(d["status"], d.get("detail")),
        "tool_request": lambda: frames.tool_request(
            d["request_id"], d["tool"], d.get("args", {}), d.get("timeout_ms")
        ),
        "ack": lambda: frames.ack(d["seq"]),
        "resume": lambda: frames.resume(d["after_seq"]),
        "refresh": lambda: frames.refresh(d["token"]),
    }
    return build[kind]()


def test_fixtures_cover_every_frame_type_of_both_schemas() -> None:
    names = {p.stem for p in FIXTURE_FILES}
    assert frame_types(SERVER) | frame_types(CLIENT) <= names


def test_sdk_knows_every_server_frame_type() -> None:
    assert frame_types(SERVER) == set(EVENT_TYPES) | set(CONTROL_TYPES)


def test_sdk_encodes_every_client_frame_type() -> None:
    for kind in frame_types(CLIENT):
        assert hasattr(frames, kind), kind


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_fixture(path: Any) -> None:
    frame = json.loads(path.read_text())
    kind = frame["type"]
    if kind in frame_types(SERVER):
        parsed = parse_frame(frame)
        assert not isinstance(parsed, (UnknownEvent, UnknownControl)), parsed
        if isinstance(parsed, Event):
            assert type(parsed) is EVENT_TYPES[kind]
            assert (parsed.id, parsed.seq, parsed.ts) == (frame["id"], frame["seq"], frame["ts"])
            assert parsed.trace_id == frame.get("trace_id")
            # Every field the fixture carries is read into the typed payload.
            assert _as_json(parsed.data) == frame["data"]
        else:
            assert type(parsed) is CONTROL_TYPES[kind]
            assert _as_json(parsed) == frame["data"]
    else:
        assert kind in frame_types(CLIENT), f"{path.name}: type {kind!r} is in no schema"
        assert encode(kind, frame.get("data")) == frame


def _as_json(value: Any) -> Any:
    """A parsed dataclass back to JSON, leaving out absent optional fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _as_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    return value


@pytest.mark.parametrize("kind", sorted(CONTROL_TYPES))
def test_control_dataclass_matches_server_schema(kind: str) -> None:
    branch = next(b for b in SERVER["oneOf"] if b["properties"]["type"]["const"] == kind)
    definition = SERVER["$defs"][branch["properties"]["data"]["$ref"].split("/")[-1]]
    cls = CONTROL_TYPES[kind]
    assert field_names(cls) == set(definition["properties"])
    # Required in the schema ⇔ not optional in the dataclass.
    assert set(definition["required"]) == field_names(cls) - optional_fields(cls)


def test_event_envelope_matches_server_schema() -> None:
    envelope = SERVER["$defs"]["EventFrame"]
    assert field_names(Event) == set(envelope["properties"])
    assert set(envelope["required"]) == field_names(Event) - optional_fields(Event)
    for kind in EVENT_TYPES:
        branch = next(b for b in SERVER["oneOf"] if b["properties"]["type"]["const"] == kind)
        assert branch["$ref"] == "#/$defs/EventFrame"


@pytest.mark.parametrize("kind", sorted(frame_types(CLIENT)))
def test_encoded_client_frames_match_client_schema(kind: str) -> None:
    branch = next(b for b in CLIENT["oneOf"] if b["properties"]["type"]["const"] == kind)
    fixture = json.loads((FIXTURES / f"{kind}.json").read_text())
    encoded = encode(kind, fixture.get("data"))
    assert set(encoded) <= set(branch["properties"]) | {"id"}
    assert set(branch.get("required", [])) <= set(encoded)
    if "data" in branch["properties"]:
        definition = CLIENT["$defs"][branch["properties"]["data"]["$ref"].split("/")[-1]]
        assert set(encoded["data"]) <= set(definition["properties"])
        assert set(definition.get("required", [])) <= set(encoded["data"])


# The payloads of inbox events are typed in Rust (`data` is open in the schema):
# the dataclasses must name the same fields as proto-events/src/payload.rs.
PAYLOADS = {
    "TaskAssigned": events.TaskAssignedData,
    "TaskRef": events.Task,
    "MappingRef": events.Mapping,
    "ContextUpdate": events.ContextUpdateData,
    "PutioTransfer": events.PutioTransfer,
    "WakeUp": events.WakeUpData,
    "ToolResult": events.ToolResultData,
    "ToolError": events.ToolErrorData,
}


def rust_structs() -> dict[str, dict[str, bool]]:
    """`struct name → {field: may be omitted (Option or serde default)}` from payload.rs."""
    source = (REPO / "proto-events" / "src" / "payload.rs").read_text()
    structs: dict[str, dict[str, bool]] = {}
    for name, body in re.findall(r"pub struct (\w+) \{(.*?)\n\}", source, re.DOTALL):
        fields: dict[str, bool] = {}
        attrs: list[str] = []
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("#["):
                attrs.append(line)
            elif m := re.match(r"pub (\w+): (.+),$", line):
                loose = m.group(2).startswith("Option<") or any("serde(default" in a for a in attrs)
                fields[m.group(1)] = loose
                attrs = []
        structs[name] = fields
    return structs


@pytest.mark.parametrize("rust_name", sorted(PAYLOADS))
def test_payload_dataclass_matches_rust_payload(rust_name: str) -> None:
    structs = rust_structs()
    assert set(structs) == set(PAYLOADS), "a payload type was added or renamed in payload.rs"
    cls = PAYLOADS[rust_name]
    rust = structs[rust_name]
    assert field_names(cls) == set(rust)
    defaults = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    # A field Rust may omit must have a default here; a required one must not.
    assert {f for f, loose in rust.items() if loose} <= defaults
    assert not ({f for f, loose in rust.items() if not loose} & defaults)


def test_node_urls_map_to_websocket_and_back() -> None:
    assert ws_base("http://127.0.0.1:8080") == "ws://127.0.0.1:8080"
    assert ws_base("https://hub.example.com/nexus/") == "wss://hub.example.com/nexus"
    assert http_base("wss://hub.example.com/nexus") == "https://hub.example.com/nexus"
    assert http_base("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
