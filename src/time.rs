//! Stored times are Unix milliseconds; people and APIs read RFC 3339.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `#[serde(with = "crate::time::ms_rfc3339")]` for millisecond fields in API output.
pub mod ms_rfc3339 {
    pub fn serialize<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*ms))
    }
}
