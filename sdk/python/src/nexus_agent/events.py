"""Typed server → agent frames of protocol v1 (proto-events/schema/server.v1.json).

Inbox events (`TaskAssigned`, `ContextUpdate`, `WakeUp`, `ToolResult`, and
`UnknownEvent` for types this SDK does not know yet) carry the envelope
`id`, `seq`, `ts`, `trace_id` and a typed `data`. Control frames (`Welcome`,
`Gap`, `TokenExpiring`, `ServerError`) carry their `data` fields directly.
Unknown fields are ignored, as the protocol asks; `raw` keeps the whole frame.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

# ---------------------------------------------------------------- payloads


@dataclass(frozen=True)
class Task:
    """A ClickUp task as the agent needs to see it."""

    id: str
    name: str
    status: str
    url: str
    list_id: str


@dataclass(frozen=True)
class Mapping:
    """Where the task is mirrored in Slack (`slack_thread_ts`: its thread, once one exists)."""

    slack_channel: str
    slack_thread_ts: str | None = None


@dataclass(frozen=True)
class TaskAssignedData:
    task: Task
    mapping: Mapping
    change: str


@dataclass(frozen=True)
class PutioTransfer:
    id: int
    name: str | None = None
    status: str | None = None
    file_id: int | None = None
    size: int | None = None
    save_parent_id: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class ContextUpdateData:
    source: str = ""
    text: str = ""
    task_id: str | None = None
    author: str | None = None
    channel: str | None = None
    ts: str | None = None
    change: str | None = None
    task: Task | None = None
    transfer: PutioTransfer | None = None


@dataclass(frozen=True)
class WakeUpData:
    text: str
    channel: str
    ts: str
    thread_ts: str | None = None
    author: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ToolErrorData:
    code: str
    message: str


@dataclass(frozen=True)
class ToolResultData:
    request_id: str
    ok: bool
    result: Any = None
    error: ToolErrorData | None = None


# ---------------------------------------------------------------- inbox events


@dataclass(frozen=True)
class Event:
    """Envelope of every inbox event: acked by `seq`, the same `id` on redelivery."""

    type: str
    id: str
    seq: int
    ts: str
    data: Any
    trace_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class TaskAssigned(Event):
    data: TaskAssignedData


@dataclass(frozen=True)
class ContextUpdate(Event):
    data: ContextUpdateData


@dataclass(frozen=True)
class WakeUp(Event):
    data: WakeUpData


@dataclass(frozen=True)
class ToolResult(Event):
    data: ToolResultData


@dataclass(frozen=True)
class UnknownEvent(Event):
    """An inbox event of a type newer than this SDK; `data` is the raw JSON value."""

    data: Any


# ---------------------------------------------------------------- control frames


@dataclass(frozen=True)
class Welcome:
    session_id: str
    agent_id: str
    tenant_id: str
    protocol: str
    heartbeat_interval_s: int
    last_acked_seq: int


@dataclass(frozen=True)
class Gap:
    """Events with `after_seq < seq < first_available_seq` were lost to retention."""

    after_seq: int
    first_available_seq: int


@dataclass(frozen=True)
class TokenExpiring:
    expires_at: str
    expires_in_s: int


@dataclass(frozen=True)
class ServerError:
    """An `error` frame: one of the agent's frames was refused (`ref`: its `id`)."""

    code: str
    message: str
    ref: str | None = None


@dataclass(frozen=True)
class UnknownControl:
    type: str
    data: Any


ServerFrame = Event | Welcome | Gap | TokenExpiring | ServerError | UnknownControl

EVENT_TYPES: dict[str, type[Event]] = {
    "task_assigned": TaskAssigned,
    "context_update": ContextUpdate,
    "wake_up": WakeUp,
    "tool_result": ToolResult,
}
CONTROL_TYPES: dict[str, type[Any]] = {
    "welcome": Welcome,
    "gap": Gap,
    "token_expiring": TokenExpiring,
    "error": ServerError,
}


class ProtocolError(ValueError):
    """A frame that does not match protocol v1."""


def _build(tp: Any, value: Any) -> Any:
    """`value` (decoded JSON) as type `tp`, for the few shapes these dataclasses use."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _build(args[0], value) if len(args) == 1 else value
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ProtocolError(f"expected a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ProtocolError(f"expected a string, got {value!r}")
        return value
    return value


_HINTS: dict[type[Any], dict[str, Any]] = {}


def from_dict(cls: type[Any], value: Any) -> Any:
    """Build dataclass `cls` from a JSON object, ignoring unknown fields."""
    if not isinstance(value, dict):
        raise ProtocolError(f"{cls.__name__}: expected an object, got {value!r}")
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "raw":
            continue
        if f.name in value:
            try:
                kwargs[f.name] = _build(hints[f.name], value[f.name])
            except ProtocolError as e:
                raise ProtocolError(f"{cls.__name__}.{f.name}: {e}") from None
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{cls.__name__}: missing field {f.name!r}")
    return cls(**kwargs)


def parse_frame(frame: dict[str, Any]) -> ServerFrame:
    """A decoded server frame as its typed dataclass."""
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ProtocolError(f"not a frame: {frame!r}")
    kind = frame["type"]
    if "seq" in frame:
        cls = EVENT_TYPES.get(kind, UnknownEvent)
        envelope: dict[str, Any] = {
            k: frame[k] for k in ("id", "seq", "ts", "trace_id", "data") if k in frame
        }
        envelope["type"] = kind
        event: Event = from_dict(cls, envelope)
        return dataclasses.replace(event, raw=frame)
    control = CONTROL_TYPES.get(kind)
    if control is None:
        return UnknownControl(type=kind, data=frame.get("data"))
    return typing.cast(ServerFrame, from_dict(control, frame.get("data")))
