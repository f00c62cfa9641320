"""`Agent`: one WebSocket session to a Nexus node, kept alive across reconnects.

A background task (`_run`) owns the connection: token → connect → `welcome` →
read frames until the socket ends → jittered backoff → connect again with
`after_seq` = the last seq received. Inbox events go into a bounded local
buffer that `events()` drains; a `tool_result` whose request is awaited by
`tool()` resolves that call directly. Acks are cumulative, so an event counts
as acked only when it and every event before it were handled. A full buffer
stops the intake (README, "Backpressure").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from . import frames
from .frames import FINAL_CLOSE_CODES, PROTOCOL
from .auth import fetch_token, http_base, ws_base
from .errors import AgentClosed, AuthError, ToolError, ToolTimeout
from .events import (
    Event,
    Gap,
    ServerError,
    TokenExpiring,
    ToolResult,
    Welcome,
    parse_frame,
)

log = logging.getLogger("nexus_agent")
_A = TypeVar("_A", bound="Agent")

_MAX_TOOL_TIMEOUT_S = 300.0


class _Pending:
    """A `tool()` call waiting for its `tool_result`."""

    def __init__(self, frame: frames.Frame) -> None:
        self.frame = frame
        self.future: asyncio.Future[ToolResult] = asyncio.get_running_loop().create_future()


class Agent:
    """A Nexus agent session. Use as `async with Agent(url, client_id, client_secret) as agent:`.

    `url` is the node (`http://127.0.0.1:8080`; `/agents` is reached over ws://).
    `cursor_file`: where the last acked seq is kept, so a restarted process resumes
    after it. `auto_ack`: `events()` acks each event once the loop body finished
    with it; set False to call `ack()` yourself. `capabilities`: sent in
    `agent_ready` by `ready()`.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: str,
        *,
        capabilities: list[str] | None = None,
        cursor_file: str | os.PathLike[str] | None = None,
        auto_ack: bool = True,
        max_buffered: int = 1000,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if max_buffered < 2:
            raise ValueError("max_buffered must be at least 2")
        self._ws_url = ws_base(url) + "/agents"
        self._http_url = http_base(url)
        self._client_id = client_id
        self._client_secret = client_secret
        self._capabilities = list(capabilities or [])
        self._cursor_file = Path(cursor_file) if cursor_file is not None else None
        self.auto_ack = auto_ack
        self._max_buffered = max_buffered
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout

        self._http: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._ws: ClientConnection | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connected = asyncio.Event()
        self._closed: AgentClosed | None = None

        # Delivery state: everything below `_received` arrived; `_handled` maps the
        # seqs received but not yet acked to whether they were handled.
        self._buffer: collections.deque[Event | Gap] = collections.deque()
        self._buffer_changed = asyncio.Event()
        self._paused = False
        self._drain_requested = False
        self._handled: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self._acked = 0
        self._acked_sent = 0
        self._received = 0
        self._have_cursor = False
        self._pending_tools: dict[str, _Pending] = {}
        self._answered_tools: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._ready_sent: list[str] | None = None
        self._status: frames.Frame | None = None

        self.welcome: Welcome | None = None
        """The `welcome` of the current (or last) session."""
        self.reconnects = 0
        """Sessions opened after the first one (diagnostics)."""
        self.token_refreshes = 0
        """Tokens refreshed in answer to `token_expiring` (diagnostics)."""

        if self._cursor_file is not None and self._cursor_file.exists():
            text = self._cursor_file.read_text().strip()
            if text:
                self._acked = self._acked_sent = self._received = int(text)
                self._have_cursor = True

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self: _A) -> _A:  # noqa: PYI019 (typing.Self needs 3.11)
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Get a token and connect; returns once the first `welcome` arrived."""
        self._http = httpx.AsyncClient(base_url=self._http_url, timeout=self._connect_timeout)
        try:
            await self._session_open()
        except BaseException:
            await self._http.aclose()
            raise
        self._run_task = asyncio.create_task(self._run(), name="nexus-agent")

    async def close(self) -> None:
        """Send the final ack, close the socket (1000) and stop every task."""
        if self._closed is None:
            self._closed = AgentClosed(1000, "closed by the agent")
        if self._run_task is not None:
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._run_task
        for task in list(self._tasks):
            task.cancel()
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                if self._acked > self._acked_sent:
                    await ws.send(json.dumps(frames.ack(self._acked)))
                    self._acked_sent = self._acked
                await ws.close(1000, "normal")
        for pending in self._pending_tools.values():
            if not pending.future.done():
                pending.future.set_exception(self._closed)
        self._buffer_changed.set()
        if self._http is not None:
            await self._http.aclose()

    # ------------------------------------------------------------ events

    async def events(self) -> AsyncIterator[Event | Gap]:
        """Inbox events in seq order (and `Gap` notices), each yielded once.

        With `auto_ack`, an event is acked when the loop asks for the next one,
        i.e. after the loop body completed; an exception or `break` leaves it
        unacked (it is delivered again to the next process).
        """
        while True:
            event = await self._next()
            if event is None:
                return
            yield event
            if self.auto_ack and isinstance(event, Event):
                await self.ack(event)

    async def _next(self) -> Event | Gap | None:
        while not self._buffer:
            if self._closed is not None:
                if self._closed.code == 1000:
                    return None  # closed by this agent: the loop just ends
                raise self._closed
            self._buffer_changed.clear()
            await self._buffer_changed.wait()
        event = self._buffer.popleft()
        if self._paused and not self._drain_requested and len(self._buffer) <= self._max_buffered // 2:
            # The server still holds what was not taken: fetch it by a new session
            # (frames still in flight on this one stay dropped until it is gone).
            self._drain_requested = True
            ws = self._ws
            if ws is not None:
                self._spawn(ws.close(1000, "buffer drained; resuming"))
        return event

    async def ack(self, event: Event | int) -> None:
        """Mark an event (or a seq) handled; acks cumulatively what is contiguous."""
        seq = event if isinstance(event, int) else event.seq
        if seq in self._handled:
            self._handled[seq] = True
        while self._handled:
            first = next(iter(self._handled))
            if not self._handled[first]:
                break
            del self._handled[first]
            self._acked = max(self._acked, first)
        if not self._handled:
            self._acked = max(self._acked, min(seq, self._received))
        await self._flush_ack()

    async def _flush_ack(self) -> None:
        if self._acked <= self._acked_sent:
            return
        acked = self._acked
        if self._cursor_file is not None:
            tmp = self._cursor_file.with_suffix(self._cursor_file.suffix + ".tmp")
            tmp.write_text(f"{acked}\n")
            os.replace(tmp, self._cursor_file)
        if await self._send(frames.ack(acked)):
            self._acked_sent = max(self._acked_sent, acked)

    @property
    def acked_seq(self) -> int:
        """The highest seq handled with every earlier one (what was or will be acked)."""
        return self._acked

    # ------------------------------------------------------------ actions

    async def ready(self, capabilities: list[str] | None = None) -> None:
        """Send `agent_ready` (again after every reconnect)."""
        if capabilities is not None:
            self._capabilities = list(capabilities)
        self._ready_sent = list(self._capabilities)
        await self._send(frames.agent_ready(self._ready_sent))

    async def set_status(self, status: str, detail: str | None = None) -> None:
        """Send `status_update` (and again after every reconnect)."""
        self._status = frames.status_update(status, detail)
        await self._send(self._status)

    async def tool(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        /,
        *,
        timeout: float = 30.0,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run tool `name` on the server and return its `result`.

        Arguments go in `args` or as keywords (a keyword given None is left out). Raises `ToolError` (with the
        server's `code`) when it answers `ok: false`, `ToolTimeout` when no answer
        came within `timeout` seconds. The request is sent again after a
        reconnect under the same `request_id`, which the server de-duplicates.
        """
        if self._closed is not None:
            raise self._closed
        timeout = min(timeout, _MAX_TOOL_TIMEOUT_S)
        request_id = request_id or f"py-{uuid.uuid4()}"
        body = {**(args or {}), **{k: v for k, v in kwargs.items() if v is not None}}
        frame = frames.tool_request(request_id, name, body, int(timeout * 1000))
        frame["id"] = request_id
        pending = _Pending(frame)
        self._pending_tools[request_id] = pending
        try:
            await self._send(frame)
            # A little longer than the server's own bound, whose `timeout` answer wins.
            try:
                result = await asyncio.wait_for(asyncio.shield(pending.future), timeout + 2.0)
            except asyncio.TimeoutError:
                raise ToolTimeout("timeout", f"no tool_result within {timeout}s", request_id) from None
        finally:
            self._pending_tools.pop(request_id, None)
        data = result.data
        if data.ok:
            return data.result
        err = data.error
        code, message = (err.code, err.message) if err else ("unknown", "no error given")
        raise (ToolTimeout if code == "timeout" else ToolError)(code, message, request_id)

    # ------------------------------------------------------------ connection

    async def _fetch_token(self) -> None:
        assert self._http is not None
        self._token, expires_in = await fetch_token(self._http, self._client_id, self._client_secret)
        self._token_expires_at = time.monotonic() + expires_in

    async def _session_open(self) -> None:
        """Connect and read up to `welcome`; raises on failure."""
        if self._token is None or time.monotonic() > self._token_expires_at - 5:
            await self._fetch_token()
        query = {"v": "1"}
        if self._have_cursor or self._received > 0:
            query["after_seq"] = str(self._received)
        url = f"{self._ws_url}?{urlencode(query)}"
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {self._token}"},
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            open_timeout=self._connect_timeout,
            max_size=None,
        )
        try:
            raw = await asyncio.wait_for(ws.recv(), self._connect_timeout)
            first = parse_frame(json.loads(raw))
            if not isinstance(first, Welcome):
                raise ConnectionError(f"expected welcome, got {first!r}")
        except BaseException:
            await ws.close()
            raise
        self.welcome = first
        if "after_seq" not in query:
            # The server replays after its own cursor.
            self._received = max(self._received, first.last_acked_seq)
            self._acked = self._acked_sent = max(self._acked, first.last_acked_seq)
        self._ws = ws
        self._paused = self._drain_requested = False
        self._connected.set()
        # Re-announce what this session should know.
        if self._acked > first.last_acked_seq:
            self._acked_sent = 0
        await self._flush_ack()
        if self._ready_sent is not None:
            await self._send(frames.agent_ready(self._ready_sent))
        if self._status is not None:
            await self._send(self._status)
        for pending in list(self._pending_tools.values()):
            await self._send(pending.frame)

    async def _run(self) -> None:
        failures = 0  # since the last healthy session: sets the backoff
        try:
            while True:
                ws = self._ws
                if ws is not None:
                    started = time.monotonic()
                    code = await self._session(ws)
                    self._ws = None
                    self._connected.clear()
                    if code in FINAL_CLOSE_CODES:
                        self._closed = AgentClosed(code, FINAL_CLOSE_CODES[code])
                        break
                    if code == 4001:
                        self._token = None
                    # After a session that lived a while (or that we ended to resume)
                    # reconnect at once; sessions that keep ending early back off.
                    healthy = self._drain_requested or time.monotonic() - started > 10
                    failures = 0 if healthy else failures + 1
                if failures:
                    cap = min(self._backoff_max, self._backoff_initial * 2 ** (failures - 1))
                    await asyncio.sleep(random.uniform(0, cap))
                try:
                    await self._session_open()
                    self.reconnects += 1
                except InvalidStatus as e:
                    status = e.response.status_code
                    log.warning("nexus: connect refused (%s); retrying", status)
                    failures += 1
                    if status == 401:
                        self._token = None
                except AuthError as e:
                    if "invalid_client" in str(e) and "suspended" not in str(e):
                        self._closed = AgentClosed(None, str(e))
                        break
                    failures += 1
                    log.warning("nexus: %s; retrying", e)
                except Exception as e:  # noqa: BLE001 (refused, reset, timed out, bad handshake: retry)
                    failures += 1
                    log.warning("nexus: connect failed (%r); retrying", e)
        except Exception as e:
            log.exception("nexus: connection loop failed")
            self._closed = AgentClosed(None, f"connection loop failed: {e!r}")
        finally:
            self._buffer_changed.set()
            for pending in self._pending_tools.values():
                if self._closed is not None and not pending.future.done():
                    pending.future.set_exception(self._closed)

    async def _session(self, ws: ClientConnection) -> int | None:
        """Read one session's frames; returns its close code."""
        assert self.welcome is not None
        heartbeat = self._spawn(self._heartbeat(ws, max(1.0, self.welcome.heartbeat_interval_s / 2)))
        try:
            async for raw in ws:
                try:
                    frame = parse_frame(json.loads(raw))
                except ValueError as e:
                    log.warning("nexus: ignoring a frame that is not protocol v1: %s", e)
                    continue
                self._dispatch(frame, ws)
        except ConnectionClosed:
            pass
        finally:
            heartbeat.cancel()
        return ws.close_code

    def _dispatch(self, frame: object, ws: ClientConnection) -> None:
        if isinstance(frame, Event):
            self._on_event(frame)
        elif isinstance(frame, Gap):
            log.warning(
                "nexus: gap: events %s < seq < %s were lost", frame.after_seq, frame.first_available_seq
            )
            self._buffer.append(frame)
            self._buffer_changed.set()
        elif isinstance(frame, TokenExpiring):
            self._spawn(self._refresh(ws))
        elif isinstance(frame, ServerError):
            pending = self._pending_tools.get(frame.ref or "")
            if pending is not None and not pending.future.done():
                pending.future.set_exception(ToolError(frame.code, frame.message, frame.ref or ""))
            else:
                log.warning("nexus: server refused a frame: %s: %s", frame.code, frame.message)
        # welcome mid-session and unknown control frames are ignored.

    def _on_event(self, event: Event) -> None:
        waiting = None
        if isinstance(event, ToolResult):
            waiting = self._pending_tools.get(event.data.request_id)
            if waiting is not None and not waiting.future.done():
                waiting.future.set_result(event)
                self._answered_tools[event.data.request_id] = None
                while len(self._answered_tools) > 10_000:
                    self._answered_tools.popitem(last=False)
        if event.seq <= self._received or self._paused:
            return  # a duplicate, or left in the server's inbox until the reader catches up
        if len(self._buffer) >= self._max_buffered:
            self._paused = True
            return
        self._received = event.seq
        answered = isinstance(event, ToolResult) and event.data.request_id in self._answered_tools
        self._handled[event.seq] = answered
        if answered:
            self._spawn(self.ack(event.seq))
        else:
            self._buffer.append(event)
            self._buffer_changed.set()

    async def _heartbeat(self, ws: ClientConnection, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(frames.heartbeat()))

    async def _refresh(self, ws: ClientConnection) -> None:
        try:
            await self._fetch_token()
        except AuthError as e:
            log.warning("nexus: token refresh failed: %s", e)
            return
        assert self._token is not None
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frames.refresh(self._token)))
            self.token_refreshes += 1

    async def _send(self, frame: frames.Frame) -> bool:
        """Send on the live socket; False when there is none (resent on reconnect)."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------ test hook

    def _drop_connection(self) -> None:
        """Abort the transport as a network failure would (tests only)."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()
