// Triage: on `task_assigned`, say "on it" in the task's Slack thread and set the
// status operators see. Run: NEXUS_URL=… NEXUS_CLIENT_ID=… NEXUS_CLIENT_SECRET=… node examples/triage.mjs
import { Agent, ToolError } from "@nexus-hub/agent";

const agent = await Agent.connect({
  url: process.env.NEXUS_URL ?? "http://127.0.0.1:8080",
  clientId: process.env.NEXUS_CLIENT_ID,
  clientSecret: process.env.NEXUS_CLIENT_SECRET,
});
agent.ready(["triage", "slack.post_message"]);
agent.setStatus("idle");
process.once("SIGTERM", () => agent.close());
process.once("SIGINT", () => agent.close());

for await (const event of agent.events()) {
  if (event.type === "gap") {
    console.warn(`lost events ${event.data.after_seq + 1}..${event.data.first_available_seq - 1}`);
    continue;
  }
  if (event.type !== "task_assigned") continue;
  const { task, mapping } = event.data;
  try {
    await agent.tool(
      "slack.post_message",
      { channel: mapping.slack_channel, thread_ts: mapping.slack_thread_ts, text: "on it" },
      { requestId: `triage-${event.id}`, timeoutMs: 15_000 },
    );
    agent.setStatus("working", `task ${task.id}: ${task.name}`);
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    console.error(`could not answer task ${task.id}: ${error.message}`);
  }
} // the event is acked here, after its body
