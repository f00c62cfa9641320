//! Nexus: a real-time coordination hub for AI agents.
//!
//! # Layers
//!
//! Read top-down. A module uses only modules of the layers below its own, never one
//! above it or beside it, so there are no cycles (`tests/layers.rs` checks every
//! `crate::` path in `src/` against this list):
//!
//! 1. [`cli`], [`fuzzing`]: the `nexus` command line; the entry points of the fuzz
//!    targets in `fuzz/`.
//! 2. [`worker`]: the agent host's side, a client of a node's API: `nexus worker`
//!    (session uploads, health, pull mode for agents without a socket) and `nexus mcp`
//!    (an MCP server that is one agent).
//! 3. [`app`]: building and running a node ([`app::Application`] binds port 0 in tests
//!    and reports the real address).
//! 4. [`routes`], [`server`]: the router — every endpoint and the layers around them;
//!    probes, metrics. The accept loop and its limits (header, body and keep-alive
//!    timeouts, the connection cap).
//! 5. [`api`], [`webhooks`], [`dashboard`]: the operator REST API under `/api`;
//!    `/webhooks/{slack,clickup,ingest,putio}` — verify, dedupe, commit a job, answer; the
//!    operator dashboard's static assets under `/dashboard`.
//! 6. [`state`]: what handlers reach (each extracts only its part where it can).
//! 7. [`gateway`]: `GET /agents` — token check, protocol negotiation, then one session
//!    task per socket (replay, live delivery, acks, keepalive, limits).
//! 8. [`admin`]: operator actions as plain functions, shared by the CLI and the API.
//! 9. [`auth`]: `POST /auth/token` (OAuth2 client credentials → HS256 JWT), secret
//!    hashing, throttling, and the operator-key extractor.
//! 10. [`http`]: the `{"error":{"code","message"}}` envelope and the extractors using it.
//! 11. [`processors`]: the node's one job processor — each job kind to its code.
//! 12. [`tools`], [`alerts`]: agents' tool requests as queue jobs, answered with
//!     `tool_result` through the inbox; cost alerts priced, fired once per period and
//!     sent to their webhooks as queue jobs (and workers' failure streaks, once each).
//! 13. [`mirror`]: the ClickUp and Slack processors and the provider tools (DESIGN §12).
//! 14. [`context`]: what processors and tools reach (store, hub, providers, caches).
//! 15. [`queue`], [`providers`]: job workers with leases, retries and dead letters;
//!     Slack Web API and ClickUp API clients, failures classified for retry.
//! 16. [`bus`]: `emit_to_agent`, `emit_to_tenant`, `online_agents`; this node's sessions,
//!     what a session talks to, and routing commits to the nodes holding the agents.
//! 17. [`inbox`], [`presence`], [`broker`]: the batching writer in front of the durable
//!     inbox; who is online; messages between nodes (each a trait with an in-process
//!     and a Redis implementation, where it has two).
//! 18. [`group_commit`], [`quota`]: one writer committing whatever requests wait in one
//!     transaction (inbox appends, job acceptance); tenant tiers' rate limits and the
//!     tenant → tier lookup.
//! 19. [`store`], [`redis`]: durable state on SQLite or PostgreSQL behind one API,
//!     migrations; the cluster profile's Redis connections.
//! 20. [`telemetry`], [`seal`]: logs, and metrics with the catalog of their names;
//!     secrets sealed at rest (XChaCha20-Poly1305) and the key that seals them.
//! 21. [`config`], [`cache`], [`time`]: flags with environment fallbacks (the README's
//!     configuration table) and tier definitions, read-through caches, time and clocks.
//!
//! Wire types shared with agents and the load test live in the `nexus-proto` crate
//! (`proto-events/`).

pub mod admin;
pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod broker;
pub mod bus;
pub mod cache;
pub mod cli;
pub mod config;
pub mod context;
pub mod dashboard;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod group_commit;
pub mod http;
pub mod inbox;
pub mod mirror;
pub mod presence;
pub mod processors;
pub mod providers;
pub mod queue;
pub mod quota;
pub mod redis;
pub mod routes;
pub mod seal;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod tools;
pub mod webhooks;
pub mod worker;
