//! Timestamps on the wire: RFC 3339, UTC, exactly millisecond precision, `Z`
//! suffix (`"2026-11-22T09:01:03.123Z"`).
//!
//! One fixed shape (rather than chrono's default, which varies the number of
//! fractional digits) keeps frames byte-stable, so fixtures, the fast
//! encoder and the serde path all agree. Parsing accepts any RFC 3339 time.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Bytes of the fixed shape `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) const TS_LEN: usize = 24;

/// Appends `ts` in the wire shape, without allocating in the common case.
pub(crate) fn push_ts(out: &mut String, ts: &DateTime<Utc>) {
    let year = ts.year();
    let nanos = ts.nanosecond();
    // Years beyond four digits and leap seconds (nanos >= 1e9) are outside the
    // fixed shape; chrono knows how to spell them.
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.push_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true));
        return;
    }
    push_digits(out, year.unsigned_abs(), 4);
    out.push('-');
    push_digits(out, ts.month(), 2);
    out.push('-');
    push_digits(out, ts.day(), 2);
    out.push('T');
    push_digits(out, ts.hour(), 2);
    out.push(':');
    push_digits(out, ts.minute(), 2);
    out.push(':');
    push_digits(out, ts.second(), 2);
    out.push('.');
    push_digits(out, nanos / 1_000_000, 3);
    out.push('Z');
}

fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    while div > 0 {
        let digit = (value / div) % 10;
        out.push(char::from(b'0' + digit as u8));
        div /= 10;
    }
}

pub(crate) fn format_ts(ts: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(TS_LEN);
    push_ts(&mut out, ts);
    out
}

/// `#[serde(with = "crate::time::millis")]` for `DateTime<Utc>` fields.
pub(crate) mod millis {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ts(ts))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn chrono_shape(ts: &DateTime<Utc>) -> String {
        ts.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    #[test]
    fn fixed_shape_matches_chrono() {
        let cases = [
            Utc.with_ymd_and_hms(2026, 11, 22, 9, 1, 3).unwrap()
                + chrono::Duration::microseconds(123_456),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::milliseconds(999),
            Utc.with_ymd_and_hms(1, 2, 3, 4, 5, 6).unwrap(),
            Utc::now(),
        ];
        for ts in cases {
            let ours = format_ts(&ts);
            assert_eq!(ours, chrono_shape(&ts));
            assert_eq!(ours.len(), TS_LEN);
        }
    }

    #[test]
    fn out_of_shape_times_fall_back_to_chrono() {
        let far = Utc.with_ymd_and_hms(12345, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(format_ts(&far), chrono_shape(&far));
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc();
        assert_eq!(format_ts(&leap), chrono_shape(&leap));
    }
}
