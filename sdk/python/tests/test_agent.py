"""The SDK against a real node: delivery, acks, resume, tokens, tools, close."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from nexus_agent import Agent, AgentClosed, AuthError, Event, Gap, ToolError, WakeUp, Welcome, frames

from .conftest import FakeSlack, Node, eventually

FAST = {"backoff_initial": 0.05, "backoff_max": 0.5}


def agent_for(node: Node, creds, client_secret: str | None = None, **kwargs) -> Agent:  # type: ignore[no-untyped-def]
    secret = client_secret or creds.client_secret
    return Agent(node.url, creds.client_id, secret, **{**FAST, **kwargs})


async def test_receives_replayed_then_live_events_in_order_and_acks(node: Node) -> None:
    creds = node.new_agent("in-order")
    before = [node.wake(creds, f"before {i}") for i in range(3)]
    seen: list[WakeUp] = []
    async with agent_for(node, creds) as agent:
        assert isinstance(agent.welcome, Welcome) and agent.welcome.agent_id == creds.id
        after = [node.wake(creds, f"live {i}") for i in range(3)]
        async for event in agent.events():
            assert isinstance(event, WakeUp)
            seen.append(event)
            if len(seen) == 6:
                await agent.ack(event)
                break
    assert [e.data.text for e in seen] == [f"before {i}" for i in range(3)] + [f"live {i}" for i in range(3)]
    assert [e.seq for e in seen] == before + after
    assert all(e.data.channel == "C0SDK" and e.id for e in seen)
    assert node.acked_seq(creds) == after[-1]


async def test_event_whose_body_failed_is_not_acked_and_comes_back(node: Node) -> None:
    creds = node.new_agent("body-fails")
    seqs = [node.wake(creds, f"m{i}") for i in range(3)]
    handled: list[int] = []
    async with agent_for(node, creds) as agent:
        with pytest.raises(RuntimeError):
            async for event in agent.events():
                if event.seq == seqs[1]:
                    raise RuntimeError("handler crashed")
                handled.append(event.seq)
    assert handled == [seqs[0]]
    assert node.acked_seq(creds) == seqs[0]
    # The next process gets the failed event again, with the same id.
    async with agent_for(node, creds) as agent:
        async for event in agent.events():
            assert isinstance(event, Event)
            assert event.seq == seqs[1]
            break


async def test_socket_killed_mid_stream_resumes_without_loss_or_duplicates(node: Node) -> None:
    creds = node.new_agent("killed")
    first = [node.wake(creds, f"m{i}") for i in range(20)]
    handled: list[int] = []
    # A 3-event buffer: most events wait in the server's inbox while the loop works,
    # so they must come from the resumed sessions.
    async with agent_for(node, creds, max_buffered=3) as agent:
        later: list[int] = []
        async for event in agent.events():
            handled.append(event.seq)
            if len(handled) in (5, 12):
                agent._drop_connection()
                later += [node.wake(creds, f"during outage {len(handled)}")]
            if len(handled) == 22:
                await agent.ack(event)
                break
        assert agent.reconnects >= 2
    assert handled == sorted(set(handled)), "in order, each once"
    assert handled == sorted(first + later), "nothing lost"
    assert node.acked_seq(creds) == handled[-1]


async def test_restarted_process_resumes_after_its_cursor_file(node: Node, tmp_path: Path) -> None:
    creds = node.new_agent("cursor")
    seqs = [node.wake(creds, f"m{i}") for i in range(6)]
    cursor = tmp_path / "cursor"
    async with agent_for(node, creds, cursor_file=cursor) as agent:
        async for event in agent.events():
            if event.seq == seqs[2]:
                await agent.ack(event)
                break
    assert cursor.read_text().strip() == str(seqs[2])
    # The file is the resume point even where the server knows less (a lost ack).
    cursor.write_text(f"{seqs[3]}\n")
    async with agent_for(node, creds, cursor_file=cursor) as agent:
        async for event in agent.events():
            assert event.seq == seqs[4]
            break


async def test_token_is_refreshed_on_token_expiring_and_session_survives(short_lived_node: Node) -> None:
    node = short_lived_node
    creds = node.new_agent("refresh")
    async with agent_for(node, creds) as agent:
        assert agent.welcome is not None
        session = agent.welcome.session_id
        started = time.monotonic()
        # Tokens live 3 s with no grace: the session outliving two of them proves the refreshes.
        await eventually(
            lambda: agent.token_refreshes >= 3 and time.monotonic() - started > 6,
            timeout=20,
            what="three refreshes over 6 s",
        )
        assert agent.reconnects == 0
        assert agent.welcome.session_id == session
        seq = node.wake(creds, "still there")
        async for event in agent.events():
            assert event.seq == seq
            break


async def test_gap_is_surfaced(short_lived_node: Node) -> None:
    node = short_lived_node
    creds = node.new_agent("gap")
    seqs = [node.wake(creds, f"m{i}") for i in range(6)]
    got: list[Event | Gap] = []
    async with agent_for(node, creds) as agent:
        async for item in agent.events():
            got.append(item)
            if isinstance(item, Event) and item.seq == seqs[-1]:
                break
    assert isinstance(got[0], Gap), got
    assert got[0].after_seq == 0 and got[0].first_available_seq > 1
    assert [e.seq for e in got[1:] if isinstance(e, Event)] == list(
        range(got[0].first_available_seq, seqs[-1] + 1)
    )


async def test_tool_call_posts_to_slack_and_returns_result(node: Node, slack: FakeSlack) -> None:
    creds = node.new_agent("tool")
    async with agent_for(node, creds) as agent:
        result = await agent.tool(
            "slack.post_message",
            channel="C0TOOL",
            text="hello from python",
            thread_ts="1763802063.000100",
            timeout=20,
        )
    assert result["channel"] == "C0TOOL"
    posted = [m for m in slack.posted() if m["ts"] == result["ts"]]
    assert len(posted) == 1
    assert posted[0]["text"] == "hello from python"
    assert posted[0]["thread_ts"] == "1763802063.000100"


async def test_tool_errors_are_typed(node: Node) -> None:
    creds = node.new_agent("tool-errors")
    async with agent_for(node, creds) as agent:
        with pytest.raises(ToolError) as unknown:
            await agent.tool("no.such_tool", {}, timeout=10)
        assert unknown.value.code == "unknown_tool"
        with pytest.raises(ToolError) as bad:
            await agent.tool("slack.post_message", {"text": "no channel"}, timeout=10)
        assert bad.value.code == "invalid_args"
        with pytest.raises(ToolError) as refused:
            await agent.tool("x" * 100, timeout=10)
        assert refused.value.code == "invalid_fields"


async def test_ready_and_status_are_shown_to_operators(node: Node) -> None:
    creds = node.new_agent("status")
    async with agent_for(node, creds) as agent:
        await agent.ready(["triage", "slack.post_message"])
        await agent.set_status("working", "on 86b1x2y3z")

        def shown():  # type: ignore[no-untyped-def]
            entry = node.online(creds)
            return entry if entry and entry["status"] == "working" else None

        entry = await eventually(shown, what="status in presence")
        assert entry["detail"] == "on 86b1x2y3z"
        assert entry["capabilities"] == ["triage", "slack.post_message"]
    await eventually(lambda: node.online(creds) is None, what="agent offline after close")


async def test_superseded_agent_stops_instead_of_reconnecting(node: Node) -> None:
    creds = node.new_agent("superseded")
    async with agent_for(node, creds) as first, agent_for(node, creds) as second:
        with pytest.raises(AgentClosed) as closed:
            async for _ in first.events():
                pass
        assert closed.value.code == 4010
        seq = node.wake(creds, "for the second")
        async for event in second.events():
            assert event.seq == seq
            break


async def test_loop_ends_when_agent_is_closed(node: Node) -> None:
    creds = node.new_agent("closing")
    async with agent_for(node, creds) as agent:

        async def close_soon() -> None:
            await eventually(lambda: agent.welcome is not None)
            await agent.close()

        closer = asyncio.create_task(close_soon())
        async for _ in agent.events():
            pass
        await closer


async def test_events_replayed_again_by_the_server_are_not_processed_twice(node: Node) -> None:
    creds = node.new_agent("replayed")
    seqs = [node.wake(creds, f"m{i}") for i in range(4)]
    handled: list[int] = []
    async with agent_for(node, creds) as agent:
        async for event in agent.events():
            handled.append(event.seq)
            if event.seq == seqs[1]:
                # The server sends everything again, with the original seqs.
                assert await agent._send(frames.resume(0))
                node.wake(creds, "after the replay")
            if len(handled) == 5:
                break
    assert handled == seqs + [seqs[-1] + 1]


async def test_tool_call_survives_a_dropped_socket_and_runs_once(node: Node, slack: FakeSlack) -> None:
    creds = node.new_agent("tool-drop")
    async with agent_for(node, creds) as agent:
        send = agent._send
        dropped = []

        async def send_then_drop(frame):  # type: ignore[no-untyped-def]
            sent = await send(frame)
            if frame["type"] == "tool_request" and not dropped:
                dropped.append(frame)
                agent._drop_connection()  # the answer cannot come on this socket
            return sent

        agent._send = send_then_drop  # type: ignore[method-assign]
        call = asyncio.create_task(
            agent.tool("slack.post_message", channel="C0DROP", text="exactly once", timeout=20)
        )
        result = await call
        assert agent.reconnects >= 1
    assert [m["ts"] for m in slack.posted() if m["channel"] == "C0DROP"] == [result["ts"]]


async def test_wrong_secret_is_an_auth_error(node: Node) -> None:
    creds = node.new_agent("wrong-secret")
    with pytest.raises(AuthError) as refused:
        async with agent_for(node, creds, client_secret="nxs_wrong"):
            pass
    assert "invalid_client" in str(refused.value)
