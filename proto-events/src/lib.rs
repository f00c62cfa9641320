//! Nexus wire protocol v1: every JSON message exchanged between an agent and
//! the hub over its WebSocket.
//!
//! The server, the load test and Rust agents all use these types, so the
//! protocol is written once. Other languages use the JSON fixtures, the JSON
//! Schema and the README that live beside this crate.
//!
//! # Layout
//! - [`ids`]: `AgentId`, `TenantId`, `SessionId`, `EventId` (UUIDv7) and `Seq`,
//!   newtypes that are bare strings/numbers on the wire.
//! - [`external`]: Slack and ClickUp ids (`SlackChannelId`, `ClickUpTaskId`, …),
//!   parsed where they enter; plain strings on the wire.
//! - [`server`]: [`ServerMsg`], what the server sends: inbox events
//!   ([`EventFrame`]) and control frames (`welcome`, `error`, `gap`,
//!   `token_expiring`).
//! - [`client`]: [`ClientMsg`], what an agent sends, and
//!   [`parse_client_frame`], the gateway's single entry point for inbound text.
//! - [`payload`]: typed `data` of the known events (`TaskAssigned`, …).
//! - [`encode`](mod@encode): the allocation-lean event writer used on the hot path.
//! - [`close`]: WebSocket close codes and their reasons.
//! - `time` (private): the one timestamp shape on the wire.
//! - `openapi` (private, feature `openapi`): OpenAPI schemas of the ids, for the
//!   server's API document; agents build without it.
//!
//! Outside `src/`: `fixtures/v1/` (one example per message, round-trip
//! tested), `schema/` (generated JSON Schema, checked by a test) and
//! `README.md` (the protocol for non-Rust agent authors).
//!
//! # Compatibility
//! Within a major version changes are additive: readers ignore unknown
//! fields, and clients ignore event types they do not know.

pub mod client;
pub mod close;
pub mod encode;
pub mod external;
pub mod ids;
#[cfg(feature = "openapi")]
mod openapi;
pub mod payload;
pub mod server;
mod time;

pub use client::{
    Ack, AgentReady, ClientFrame, ClientMsg, FrameError, MAX_CAPABILITIES, MAX_CAPABILITY_LEN,
    MAX_DETAIL_LEN, MAX_STATUS_LEN, Refresh, Resume, StatusUpdate, ToolRequest, parse_client_frame,
};
pub use encode::{encode, encode_event};
pub use external::{
    ClickUpListId, ClickUpTaskId, ClickUpUserId, InvalidExternalId, SlackChannelId, SlackTs,
    SlackUserId,
};
pub use ids::{AgentId, EventId, Seq, SessionId, TenantId};
pub use payload::{
    ContextUpdate, EventData, MappingRef, PutioTransfer, TaskAssigned, TaskRef, ToolError,
    ToolResult, WakeUp,
};
pub use server::{
    ErrorCode, ErrorData, EventFrame, EventType, Gap, ServerMsg, TokenExpiring, UnknownEventType,
    Welcome,
};

/// The WebSocket subprotocol of version 1 (`Sec-WebSocket-Protocol: nexus.v1`).
pub const PROTOCOL_V1: &str = "nexus.v1";

/// Every protocol this build speaks, newest first; offered to a client whose
/// requested version is refused.
pub const SUPPORTED_PROTOCOLS: &[&str] = &[PROTOCOL_V1];
