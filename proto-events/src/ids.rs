//! Identifier newtypes.
//!
//! Every id on the wire is a bare UUID string, so without newtypes an agent id
//! and a tenant id would be interchangeable in Rust code. The newtypes are
//! `#[serde(transparent)]`: they change nothing on the wire.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            JsonSchema,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh UUIDv7: time-ordered, so ids sort by creation and index well.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// An agent: one program holding (at most) one live socket.
    AgentId
);
uuid_id!(
    /// The tenant an agent belongs to; every routing decision is scoped by it.
    TenantId
);
uuid_id!(
    /// One WebSocket connection of an agent, from `welcome` to close.
    SessionId
);
uuid_id!(
    /// One event. Stays the same when the event is redelivered, so it can
    /// correlate duplicates across sessions and with server logs.
    EventId
);

/// Position of an event in one agent's inbox: strictly increasing per agent,
/// starting at 1. `Seq::ZERO` means "nothing yet" (e.g. nothing acked).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Seq(u64);

impl Seq {
    pub const ZERO: Seq = Seq(0);

    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The seq after this one. Saturates rather than wrapping or panicking:
    /// at a million events per second per agent, u64 lasts 500,000 years.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl From<u64> for Seq {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl From<Seq> for u64 {
    fn from(seq: Seq) -> Self {
        seq.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Seq {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_uuid_strings_on_the_wire() {
        let id = AgentId::new_v7();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<AgentId>(&json).unwrap(), id);
        assert_eq!(id.to_string().parse::<AgentId>().unwrap(), id);
    }

    #[test]
    fn v7_ids_sort_by_creation() {
        let a = EventId::new_v7();
        let b = EventId::new_v7();
        assert!(a < b);
    }

    #[test]
    fn bad_ids_are_rejected() {
        assert!("not-a-uuid".parse::<TenantId>().is_err());
        assert!(serde_json::from_str::<SessionId>("\"x\"").is_err());
        assert!(serde_json::from_str::<SessionId>("5").is_err());
    }

    #[test]
    fn seq_is_a_bare_number() {
        let seq = Seq::new(41).next();
        assert_eq!(seq.get(), 42);
        assert_eq!(serde_json::to_string(&seq).unwrap(), "42");
        assert_eq!("42".parse::<Seq>().unwrap(), seq);
        assert_eq!(Seq::ZERO.next(), Seq::new(1));
        assert_eq!(Seq::new(u64::MAX).next(), Seq::new(u64::MAX));
        assert!(serde_json::from_str::<Seq>("-1").is_err());
    }
}
