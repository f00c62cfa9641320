"""A minimal triage agent: on `task_assigned`, say "on it" in the task's Slack thread.

    NEXUS_URL=http://127.0.0.1:8080 NEXUS_CLIENT_ID=nxc_… NEXUS_CLIENT_SECRET=nxs_… \\
        python examples/triage.py

Stops cleanly on Ctrl-C / SIGTERM. NEXUS_CURSOR_FILE (optional) keeps the resume point.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from nexus_agent import Agent, Gap, TaskAssigned, ToolError


async def main() -> None:
    agent = Agent(
        os.environ.get("NEXUS_URL", "http://127.0.0.1:8080"),
        os.environ["NEXUS_CLIENT_ID"],
        os.environ["NEXUS_CLIENT_SECRET"],
        capabilities=["triage", "slack.post_message"],
        cursor_file=os.environ.get("NEXUS_CURSOR_FILE"),
    )
    async with agent:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(agent.close()))
        await agent.ready()
        await agent.set_status("idle")
        print("triage: ready", flush=True)
        async for event in agent.events():
            if isinstance(event, Gap):
                print(f"triage: lost events {event.after_seq}..{event.first_available_seq}", flush=True)
            elif isinstance(event, TaskAssigned):
                task, mapping = event.data.task, event.data.mapping
                await agent.set_status("working", f"triaging {task.id}: {task.name}")
                try:
                    await agent.tool(
                        "slack.post_message",
                        channel=mapping.slack_channel,
                        thread_ts=mapping.slack_thread_ts,
                        text=f"On it: {task.name}",
                        timeout=30,
                    )
                    print(f"triage: task {task.id}: said on it", flush=True)
                except ToolError as e:
                    print(f"triage: task {task.id}: could not post ({e.code})", flush=True)
                await agent.set_status("idle")
    print("triage: stopped", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
