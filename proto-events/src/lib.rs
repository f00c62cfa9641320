//! The Nexus wire protocol, v1: every message between agents and the hub.
//!
//! - [`ids`]: newtypes for ids and `seq`, serialized as bare strings / numbers.
//! - [`server`]: [`ServerMsg`], what the hub sends (inbox events and control frames).
//! - [`client`]: [`ClientMsg`], what agents send, and [`parse_client_frame`], which
//!   classifies bad frames into the `error` codes.
//! - [`payload`]: typed `data` of the known event types.
//! - [`encode`](mod@encode): writing frames, including the allocation-light event path.
//! - [`close`]: WebSocket close codes and what a client should do about each.
//!
//! The JSON shapes are a contract: `fixtures/v1/` pins one example of every message
//! and `schema/` holds the generated JSON Schema; tests fail when either drifts.

pub mod client;
pub mod close;
pub mod encode;
pub mod ids;
pub mod payload;
pub mod server;
mod time;

pub use client::{
    Ack, AgentReady, ClientFrame, ClientMsg, FrameError, Refresh, Resume, StatusUpdate,
    ToolRequest, parse_client_frame,
};
pub use encode::{encode, encode_event};
pub use ids::{AgentId, EventId, Seq, SessionId, TenantId};
pub use payload::{
    ContextUpdate, MappingRef, TaskAssigned, TaskRef, ToolError, ToolResult, WakeUp,
};
pub use server::{
    ErrorCode, ErrorData, EventFrame, EventType, Gap, ServerMsg, TokenExpiring, Welcome,
};

/// The protocol this crate speaks, as negotiated by WebSocket subprotocol.
pub const PROTOCOL_V1: &str = "nexus.v1";
/// Every protocol a server built from this crate accepts.
pub const SUPPORTED_PROTOCOLS: &[&str] = &[PROTOCOL_V1];
