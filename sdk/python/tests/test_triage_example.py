"""examples/triage.py run as a process against the node and the fake Slack."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from .conftest import FakeSlack, Node, eventually

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "triage.py"


async def test_triage_example_says_on_it_in_the_task_thread(node: Node, slack: FakeSlack) -> None:
    creds = node.new_agent("triage")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        env={
            **os.environ,
            "NEXUS_URL": node.url,
            "NEXUS_CLIENT_ID": creds.client_id,
            "NEXUS_CLIENT_SECRET": creds.client_secret,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)  # type: ignore[union-attr]
        assert line.decode().strip() == "triage: ready"
        seq = node.emit(
            creds,
            "task_assigned",
            {
                "task": {
                    "id": "86b1x2y3z",
                    "name": "Fix login redirect",
                    "status": "to do",
                    "url": "https://app.clickup.com/t/86b1x2y3z",
                    "list_id": "901234567",
                },
                "mapping": {"slack_channel": "C0TRIAGE", "slack_thread_ts": "1763802063.000100"},
                "change": "assigned",
            },
        )
        posts = await eventually(
            lambda: [m for m in slack.posted() if m["channel"] == "C0TRIAGE"],
            timeout=20,
            what="the triage post",
        )
        assert len(posts) == 1
        assert posts[0]["thread_ts"] == "1763802063.000100"
        assert posts[0]["text"] == "On it: Fix login redirect"
        line = await asyncio.wait_for(proc.stdout.readline(), 20)  # type: ignore[union-attr]
        assert line.decode().strip() == "triage: task 86b1x2y3z: said on it"
        entry = await eventually(lambda: node.online(creds), what="presence")
        assert entry["capabilities"] == ["triage", "slack.post_message"]
        await eventually(lambda: node.acked_seq(creds) >= seq, what="the event acked")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(proc.stdout.read(), 20)  # type: ignore[union-attr]
    assert await proc.wait() == 0, rest.decode()
    assert rest.decode().strip().endswith("triage: stopped")
