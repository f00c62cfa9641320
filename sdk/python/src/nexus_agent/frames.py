"""Agent → server frames of protocol v1 (proto-events/schema/client.v1.json), as dicts."""

from __future__ import annotations

from typing import Any

Frame = dict[str, Any]

PROTOCOL = "nexus.v1"
# Close codes after which reconnecting is wrong (proto-events README §6).
FINAL_CLOSE_CODES = {4003: "agent_disabled", 4010: "superseded", 4011: "tenant_suspended"}


def heartbeat() -> Frame:
    return {"type": "heartbeat"}


def agent_ready(capabilities: list[str]) -> Frame:
    return {"type": "agent_ready", "data": {"capabilities": list(capabilities)}}


def status_update(status: str, detail: str | None = None) -> Frame:
    data: dict[str, Any] = {"status": status}
    if detail is not None:
        data["detail"] = detail
    return {"type": "status_update", "data": data}


def tool_request(request_id: str, tool: str, args: dict[str, Any], timeout_ms: int | None = None) -> Frame:
    data: dict[str, Any] = {"request_id": request_id, "tool": tool, "args": args}
    if timeout_ms is not None:
        data["timeout_ms"] = timeout_ms
    return {"type": "tool_request", "data": data}


def ack(seq: int) -> Frame:
    return {"type": "ack", "data": {"seq": seq}}


def resume(after_seq: int) -> Frame:
    return {"type": "resume", "data": {"after_seq": after_seq}}


def refresh(token: str) -> Frame:
    return {"type": "refresh", "data": {"token": token}}
