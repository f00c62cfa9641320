//! Slack and ClickUp ids: parsed once where they enter (webhooks, provider answers,
//! operator input, stored rows), so code past that point holds a value known to be
//! safe in URLs and SQL parameters, and a channel id cannot be passed as a task id.
//!
//! On the wire each is a plain string. The ClickUp ones also read a JSON integer,
//! because ClickUp's API and webhooks send user and list ids as numbers.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An external id that does not have the shape of one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {rule}")]
pub struct InvalidExternalId {
    what: &'static str,
    rule: &'static str,
}

/// What Slack and ClickUp ids look like (`C024BE91L`, `86b1x2y3z`, `DEV-42`, `183`),
/// with room to spare.
const PLAIN_RULE: &str = "1–64 characters of letters, digits, '_', '-' or '.'";

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

const TS_RULE: &str = "digits, '.' and digits, like 1700000000.000100";

/// Seconds and a sequence number, as Slack writes a message's `ts`.
fn is_ts(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    s.len() <= 32
        && s.split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b))
}

/// What serde needs to read an id from a string (and, for ClickUp, a number).
trait ExternalId: FromStr<Err = InvalidExternalId> {
    const WHAT: &'static str;
    const NUMBERS: bool;
}

struct IdVisitor<T>(PhantomData<T>);

impl<T: ExternalId> Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = if T::NUMBERS {
            "string or integer"
        } else {
            "string"
        };
        write!(f, "{} (a {shape})", T::WHAT)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        if !T::NUMBERS {
            return Err(E::invalid_type(Unexpected::Unsigned(v), &self));
        }
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        if !T::NUMBERS {
            return Err(E::invalid_type(Unexpected::Signed(v), &self));
        }
        self.visit_str(&v.to_string())
    }
}

macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $valid:ident, $rule:ident, numbers: $numbers:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ExternalId for $name {
            const WHAT: &'static str = $what;
            const NUMBERS: bool = $numbers;
        }

        impl FromStr for $name {
            type Err = InvalidExternalId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if $valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidExternalId { what: $what, rule: $rule })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidExternalId;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                if $valid(&s) {
                    Ok(Self(s))
                } else {
                    Err(InvalidExternalId { what: $what, rule: $rule })
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(IdVisitor::<$name>(PhantomData))
            }
        }
    };
}

external_id!(
    /// A Slack channel (`C…`, `G…`, `D…`).
    SlackChannelId, "the Slack channel id", is_plain, PLAIN_RULE, numbers: false
);
external_id!(
    /// A Slack user (`U…`, `W…`).
    SlackUserId, "the Slack user id", is_plain, PLAIN_RULE, numbers: false
);
external_id!(
    /// A Slack message's `ts`: with its channel it names the message, and a thread is
    /// named by the `ts` of its first message.
    SlackTs, "the Slack ts", is_ts, TS_RULE, numbers: false
);
external_id!(
    /// A ClickUp list: what a project mapping ties to a Slack channel.
    ClickUpListId, "the ClickUp list id", is_plain, PLAIN_RULE, numbers: true
);
external_id!(
    /// A ClickUp task (`86b1x2y3z`, or a custom id such as `DEV-42`).
    ClickUpTaskId, "the ClickUp task id", is_plain, PLAIN_RULE, numbers: true
);
external_id!(
    /// A ClickUp user (a number in ClickUp's API, kept as text).
    ClickUpUserId, "the ClickUp user id", is_plain, PLAIN_RULE, numbers: true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_looking_ids_parse_and_print_as_given() {
        for s in ["C024BE91L", "G8PSS9T3V", "C1"] {
            assert_eq!(s.parse::<SlackChannelId>().unwrap().as_str(), s);
        }
        assert_eq!(
            "U024BE7LH".parse::<SlackUserId>().unwrap().to_string(),
            "U024BE7LH"
        );
        for s in ["1355517523.000005", "1700000000.000100", "1.0001"] {
            assert_eq!(s.parse::<SlackTs>().unwrap().as_str(), s);
        }
        for s in ["86b1x2y3z", "DEV-42", "T1"] {
            assert_eq!(s.parse::<ClickUpTaskId>().unwrap().as_str(), s);
        }
        assert!("901234567".parse::<ClickUpListId>().is_ok());
        assert!(
            "-1".parse::<ClickUpUserId>().is_ok(),
            "ClickUp's automation user"
        );
    }

    #[test]
    fn empty_long_and_odd_ids_are_refused_with_the_rule() {
        let long = "a".repeat(65);
        for bad in [
            "",
            long.as_str(),
            "two words",
            "C1/../x",
            "C1'",
            "ç1",
            "#general",
        ] {
            assert!(bad.parse::<SlackChannelId>().is_err(), "{bad:?}");
            assert!(bad.parse::<ClickUpTaskId>().is_err(), "{bad:?}");
        }
        assert!("a".repeat(64).parse::<ClickUpListId>().is_ok());
        let err = "x y".parse::<ClickUpListId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the ClickUp list id must be 1–64 characters of letters, digits, '_', '-' or '.'"
        );
        for bad in [
            "",
            "1700000000",
            "1700000000.",
            ".000100",
            "1.2.3",
            "1700000000.00a1",
        ] {
            assert!(bad.parse::<SlackTs>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn on_the_wire_an_id_is_a_plain_string() {
        let ts: SlackTs = serde_json::from_str("\"1700000000.000100\"").unwrap();
        assert_eq!(serde_json::to_string(&ts).unwrap(), "\"1700000000.000100\"");
        let channel: SlackChannelId = serde_json::from_str("\"C1\"").unwrap();
        assert_eq!(serde_json::to_string(&channel).unwrap(), "\"C1\"");
        let err = serde_json::from_str::<SlackChannelId>("\"a b\"").unwrap_err();
        assert!(
            err.to_string().starts_with("the Slack channel id must be"),
            "{err}"
        );
    }

    #[test]
    fn clickup_ids_read_numbers_and_slack_ids_do_not() {
        let user: ClickUpUserId = serde_json::from_str("183").unwrap();
        assert_eq!(user.as_str(), "183");
        assert_eq!(serde_json::to_string(&user).unwrap(), "\"183\"");
        let automation: ClickUpUserId = serde_json::from_str("-1").unwrap();
        assert_eq!(automation.as_str(), "-1");
        let list: ClickUpListId = serde_json::from_str("901234567").unwrap();
        assert_eq!(list.as_str(), "901234567");
        assert!(serde_json::from_str::<SlackUserId>("183").is_err());
        assert!(serde_json::from_str::<ClickUpTaskId>("1.5").is_err());
        assert!(serde_json::from_str::<ClickUpTaskId>("null").is_err());
    }
}
