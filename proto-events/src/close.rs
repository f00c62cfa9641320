//! WebSocket close codes the server uses, and what a client should do about each.

/// The session ended normally.
pub const NORMAL: u16 = 1000;
/// A protocol violation at the WebSocket level (bad framing).
pub const PROTOCOL_ERROR: u16 = 1002;
/// Persistent abuse (a stream of bad frames): fix the client before reconnecting.
pub const POLICY_VIOLATION: u16 = 1008;
/// A frame larger than the limit (64 KiB by default).
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The node is restarting or shutting down: reconnect (any node) and resume.
pub const SERVICE_RESTART: u16 = 1012;
/// The session's token expired without a `refresh`: get a new token and reconnect.
pub const TOKEN_EXPIRED: u16 = 4001;
/// The agent was disabled by an operator: do not reconnect.
pub const AGENT_DISABLED: u16 = 4003;
/// Nothing was heard from the agent within the pong timeout after a ping: reconnect.
pub const IDLE_TIMEOUT: u16 = 4008;
/// The agent did not read fast enough; its events wait in its inbox: reconnect and resume.
pub const SLOW_CONSUMER: u16 = 4009;
/// A newer session of the same agent replaced this one: do not fight it.
pub const SUPERSEDED: u16 = 4010;

/// The short reason sent in the close frame.
pub fn reason(code: u16) -> &'static str {
    match code {
        NORMAL => "normal",
        PROTOCOL_ERROR => "protocol_error",
        POLICY_VIOLATION => "policy_violation",
        MESSAGE_TOO_BIG => "message_too_big",
        SERVICE_RESTART => "service_restart",
        TOKEN_EXPIRED => "token_expired",
        AGENT_DISABLED => "agent_disabled",
        IDLE_TIMEOUT => "idle_timeout",
        SLOW_CONSUMER => "slow_consumer",
        SUPERSEDED => "superseded",
        _ => "closed",
    }
}
