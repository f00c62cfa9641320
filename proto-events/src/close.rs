//! WebSocket close codes the server uses, and the short reason string sent
//! with each. Clients decide from the code whether to reconnect, refresh
//! their token first, or stop (see the README's table).

/// The session ended normally; reconnect if still wanted.
pub const NORMAL: u16 = 1000;
/// A protocol violation at the WebSocket level (bad framing).
pub const PROTOCOL_ERROR: u16 = 1002;
/// Persistent abuse (repeated invalid frames or rate-limit violations).
/// Reconnecting immediately will likely meet the same fate; fix the client.
pub const POLICY_VIOLATION: u16 = 1008;
/// A frame exceeded the maximum message size (64 KiB by default).
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// Graceful shutdown of this node: reconnect (to any node) and resume.
pub const SERVICE_RESTART: u16 = 1012;
/// The token expired without a `refresh`: get a new token, then reconnect.
pub const TOKEN_EXPIRED: u16 = 4001;
/// An operator disabled the agent: do not reconnect.
pub const AGENT_DISABLED: u16 = 4003;
/// Nothing was heard from the agent within the pong timeout after a ping:
/// reconnect and resume.
pub const IDLE_TIMEOUT: u16 = 4008;
/// The agent did not read fast enough; its events wait in its inbox.
/// Reconnect and resume (and read faster).
pub const SLOW_CONSUMER: u16 = 4009;
/// A newer connection of the same agent took over. Do not reconnect from
/// this process: the other one is live.
pub const SUPERSEDED: u16 = 4010;
/// An operator suspended the agent's tenant: do not reconnect until it is resumed
/// (token requests are refused meanwhile).
pub const TENANT_SUSPENDED: u16 = 4011;
/// The tenant already has as many agents connected as its tier allows. Reconnect
/// with backoff (a place frees when another agent disconnects), or ask an operator
/// for a larger tier.
pub const QUOTA_EXCEEDED: u16 = 4029;

/// The short reason sent in the close frame for `code`; `"closed"` for a
/// code not listed in this module.
pub const fn reason(code: u16) -> &'static str {
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
        TENANT_SUSPENDED => "tenant_suspended",
        QUOTA_EXCEEDED => "quota_exceeded",
        _ => "closed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_and_distinct() {
        let codes = [
            NORMAL,
            PROTOCOL_ERROR,
            POLICY_VIOLATION,
            MESSAGE_TOO_BIG,
            SERVICE_RESTART,
            TOKEN_EXPIRED,
            AGENT_DISABLED,
            IDLE_TIMEOUT,
            SLOW_CONSUMER,
            SUPERSEDED,
            TENANT_SUSPENDED,
            QUOTA_EXCEEDED,
        ];
        let mut reasons: Vec<_> = codes.iter().map(|&c| reason(c)).collect();
        // A close reason must fit the 123 bytes a close frame allows.
        assert!(reasons.iter().all(|r| r.len() < 123 && *r != "closed"));
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), codes.len());
        assert_eq!(reason(4010), "superseded");
        assert_eq!(reason(4999), "closed");
    }
}
