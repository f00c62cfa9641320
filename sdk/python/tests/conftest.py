"""A real Nexus node (and a fake Slack it posts to) for the SDK tests.

The binary is `NEXUS_BIN`, else `${CARGO_TARGET_DIR:-<repo>/target}/debug/nexus`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "proto-events" / "fixtures" / "v1"
SCHEMAS = REPO / "proto-events" / "schema"
SLACK_TOKEN = "xoxb-sdk-python-test"


def nexus_bin() -> str:
    if "NEXUS_BIN" in os.environ:
        return os.environ["NEXUS_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return str(target / "debug" / "nexus")


async def eventually(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `cond` (sync or async) until it returns a truthy value, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ fake Slack


class FakeSlack:
    """`chat.postMessage` and `conversations.history|replies`, as much as Nexus uses."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.auth_seen: list[str | None] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("Authorization")
                with fake._lock:
                    fake.auth_seen.append(auth)
                if auth != f"Bearer {SLACK_TOKEN}":
                    return self._answer({"ok": False, "error": "invalid_auth"})
                if self.path.rstrip("/").endswith("chat.postMessage"):
                    with fake._lock:
                        ts = f"{int(time.time())}.{len(fake.messages) + 1:06d}"
                        fake.messages.append({**body, "ts": ts})
                    return self._answer({"ok": True, "channel": body["channel"], "ts": ts})
                self._answer({"ok": False, "error": "unknown_method"})

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with fake._lock:
                    msgs = [m for m in fake.messages if m.get("channel") == query.get("channel")]
                if parts.path.endswith("conversations.replies"):
                    msgs = [m for m in msgs if query.get("ts") in (m.get("thread_ts"), m["ts"])]
                self._answer({"ok": True, "messages": msgs, "has_more": False})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def posted(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ the node


@dataclass
class AgentCreds:
    id: str
    client_id: str
    client_secret: str


class Node:
    def __init__(self, extra_args: list[str], slack: FakeSlack) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="nexus-sdk-py-")
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite://{self.dir.name}/n.db",
            "NEXUS_JWT_SECRET": "sdk-python-test-secret-0123456789abcdef",
            "NEXUS_LOG_FORMAT": "json",
        }
        self.bin = nexus_bin()
        if not os.access(self.bin, os.X_OK):
            pytest.fail(f"no nexus binary at {self.bin}: run `cargo build -p nexus` or set NEXUS_BIN")
        self.cli("migrate")
        self.tenant_id = self.cli("tenant", "create", "--name", "sdk-python")["id"]
        self.cli("tenant", "set", self.tenant_id, "--tool-scope", "any")
        self.operator_key = self.cli(
            "operator-key", "create", "--name", "sdk", "--scopes", "read,write,admin"
        )["key"]
        self.cli(
            "source",
            "add",
            "--tenant",
            self.tenant_id,
            "--kind",
            "slack",
            "--team-id",
            "T0SDKPY",
            "--signing-secret",
            "sdk-signing-secret",
            "--bot-token",
            SLACK_TOKEN,
            "--bot-user",
            "U0NEXUSBOT",
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(Path(self.dir.name) / "node.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                self.bin,
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--slack-api-url",
                slack.url,
                "--cache-ttl",
                "0s",
                *extra_args,
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nexus serve exited: {self.logs()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"node not ready within 30s: {self.logs()[-2000:]}")
            time.sleep(0.05)
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.operator_key}"}, timeout=10
        )

    def cli(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [self.bin, *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"nexus {' '.join(args)} failed: {out.stderr[-2000:]}")
        lines = [line for line in out.stdout.splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else {}

    def logs(self) -> str:
        return (Path(self.dir.name) / "node.log").read_text(errors="replace")

    def new_agent(self, name: str) -> AgentCreds:
        resp = self.api.post(f"/api/tenants/{self.tenant_id}/agents", json={"name": name})
        assert resp.status_code == 201, resp.text
        a = resp.json()["agents"][0]
        return AgentCreds(a["id"], a["client_id"], a["client_secret"])

    def emit(self, agent: AgentCreds, type_: str, data: dict[str, Any]) -> int:
        resp = self.api.post(f"/api/agents/{agent.id}/events", json={"type": type_, "data": data})
        assert resp.status_code == 202, resp.text
        return int(resp.json()["seq"])

    def wake(self, agent: AgentCreds, text: str) -> int:
        return self.emit(agent, "wake_up", {"text": text, "channel": "C0SDK", "ts": "1763802420.000300"})

    def acked_seq(self, agent: AgentCreds) -> int:
        """What the server holds as the agent's acked seq (read with its own token)."""
        tok = httpx.post(
            f"{self.url}/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(agent.client_id, agent.client_secret),
        ).json()["access_token"]
        resp = httpx.get(
            f"{self.url}/api/agents/me/inbox",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {tok}"},
        )
        return int(resp.json()["acked_seq"])

    def online(self, agent: AgentCreds) -> dict[str, Any] | None:
        agents = self.api.get(f"/api/tenants/{self.tenant_id}/agents/online").json()["agents"]
        return next((a for a in agents if a["agent_id"] == agent.id), None)

    def stop(self) -> None:
        self.api.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.dir.cleanup()


@pytest.fixture(scope="session")
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def node(slack: FakeSlack) -> Iterator[Node]:
    n = Node([], slack)
    yield n
    n.stop()


@pytest.fixture(scope="session")
def short_lived_node(slack: FakeSlack) -> Iterator[Node]:
    """Tokens live 3 s, `token_expiring` comes 2 s before, no grace; inboxes keep 3 events."""
    n = Node(
        ["--token-ttl-s", "3", "--ws-token-warning", "2s", "--ws-token-grace", "0s", "--inbox-cap", "3"],
        slack,
    )
    yield n
    n.stop()
