//! Nexus: a real-time coordination hub for AI agents.
//!
//! # Layout
//!
//! Read top-down; each layer knows only the ones below it.
//!
//! - [`cli`] and [`app`]: the `nexus` command line, and building/running a node
//!   ([`app::Application`] binds port 0 in tests and reports the real address).
//! - [`config`]: flags with environment fallbacks (the README's configuration table).
//! - [`http`]: the axum router, the `{"error":{"code","message"}}` envelope, probes, metrics.
//! - [`auth`]: `POST /auth/token` (OAuth2 client credentials → HS256 JWT), secret
//!   hashing, throttling, and the operator-key extractor.
//! - [`gateway`]: `GET /agents` — token check, protocol negotiation, then one
//!   session task per socket (replay, live delivery, acks, keepalive, limits).
//! - [`webhooks`]: `/webhooks/{slack,clickup,ingest}` — verify, dedupe, commit a job, answer.
//! - [`queue`]: job workers with leases, retries, dead letters; processors by job kind.
//! - [`mirror`]: the ClickUp and Slack processors and the provider tools (DESIGN §12).
//! - [`providers`]: Slack Web API and ClickUp API clients; failures classified for retry.
//! - [`api`]: the operator REST API under `/api`.
//! - [`bus`]: `emit_to_agent`, `emit_to_tenant`, `online_agents`; this node's sessions,
//!   what a session talks to, and routing commits to the nodes holding the agents.
//! - [`inbox`]: the batching writer in front of the durable inbox; acks; retention.
//! - [`presence`]: who is online (trait; in-process and Redis implementations).
//! - [`broker`]: messages between nodes (trait; in-process and Redis pub/sub).
//! - [`redis`]: the cluster profile's Redis connections.
//! - [`tools`]: agents' tool requests as queue jobs, answered with `tool_result` through the inbox.
//! - [`admin`]: operator actions as plain functions, shared by the CLI and the API.
//! - [`store`]: durable state on SQLite or PostgreSQL behind one API; migrations.
//! - [`state`], [`cache`], [`telemetry`], [`time`]: shared handles, read-through caches,
//!   logs and metrics, time formats.
//!
//! Wire types shared with agents and the load test live in the `nexus-proto` crate
//! (`proto-events/`).

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod broker;
pub mod bus;
pub mod cache;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod http;
pub mod inbox;
pub mod mirror;
pub mod presence;
pub mod providers;
pub mod queue;
pub mod redis;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod tools;
pub mod webhooks;
