//! Webhook signatures: HMAC-SHA256 over the raw body, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Timestamped signatures (Slack's, ingest's) further than this from now are refused
/// (replay defence).
pub const SIGNATURE_WINDOW_S: i64 = 300;

fn mac(key: &str, parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    for p in parts {
        m.update(p);
    }
    m
}

/// Lower-case hex HMAC-SHA256 of the concatenated parts.
pub fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    hex::encode(mac(key, parts).finalize().into_bytes())
}

/// Whether `given_hex` is the HMAC of `parts` under `key`; constant time in the digest.
pub fn verify_hex(key: &str, parts: &[&[u8]], given_hex: &str) -> bool {
    match hex::decode(given_hex.trim()) {
        Ok(given) => mac(key, parts).verify_slice(&given).is_ok(),
        Err(_) => false,
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    #[error("missing or unreadable timestamp or signature")]
    Missing,
    #[error("the request timestamp is more than 5 minutes from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks a signature `{version}=` + hex HMAC of `{version}:{timestamp}:{field}:…` made
/// at most 5 minutes from `now_s`: what is signed cannot be replayed later, nor with
/// any field (the body, an idempotency key) changed.
pub fn verify_stamped(
    secret: &str,
    version: &str,
    timestamp: &str,
    signature: &str,
    fields: &[&[u8]],
    now_s: i64,
) -> Result<(), StampError> {
    let timestamp = timestamp.trim();
    let ts: i64 = timestamp.parse().map_err(|_| StampError::Missing)?;
    // abs_diff: a timestamp is the sender's i64, and `now - i64::MIN` would overflow.
    if now_s.abs_diff(ts) > SIGNATURE_WINDOW_S.unsigned_abs() {
        return Err(StampError::Stale);
    }
    let hex = signature
        .strip_prefix(version)
        .and_then(|s| s.strip_prefix('='))
        .ok_or(StampError::Mismatch)?;
    let mut parts: Vec<&[u8]> = vec![version.as_bytes(), b":", timestamp.as_bytes()];
    for field in fields {
        parts.extend_from_slice(&[b":", field]);
    }
    if verify_hex(secret, &parts, hex) {
        Ok(())
    } else {
        Err(StampError::Mismatch)
    }
}

/// Checks `X-Slack-Signature` (`v0=` + hex HMAC of `v0:{timestamp}:{body}`) at time `now_s`.
pub fn verify_slack(
    secret: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_s: i64,
) -> Result<(), StampError> {
    verify_stamped(secret, "v0", timestamp, signature, &[body], now_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's published example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slack_published_example_verifies_at_its_time() {
        let now = 1_531_420_618 + 10;
        assert_eq!(verify_slack(SECRET, TS, SIG, BODY.as_bytes(), now), Ok(()));
    }

    #[test]
    fn slack_rejects_tampering_and_stale_or_future_timestamps() {
        let now = 1_531_420_618;
        let tampered = format!("{BODY}x");
        assert_eq!(
            verify_slack(SECRET, TS, SIG, tampered.as_bytes(), now),
            Err(StampError::Mismatch)
        );
        assert_eq!(
            verify_slack("other", TS, SIG, BODY.as_bytes(), now),
            Err(StampError::Mismatch)
        );
        assert_eq!(
            verify_slack(SECRET, TS, SIG, BODY.as_bytes(), now + 301),
            Err(StampError::Stale)
        );
        assert_eq!(
            verify_slack(SECRET, TS, SIG, BODY.as_bytes(), now - 301),
            Err(StampError::Stale)
        );
        assert_eq!(
            verify_slack(SECRET, "soon", SIG, BODY.as_bytes(), now),
            Err(StampError::Missing)
        );
        assert_eq!(
            verify_slack(SECRET, TS, "a2114d", BODY.as_bytes(), now),
            Err(StampError::Mismatch)
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        for ts in [i64::MIN.to_string(), i64::MAX.to_string()] {
            assert_eq!(
                verify_slack(SECRET, &ts, SIG, BODY.as_bytes(), 1_531_420_618),
                Err(StampError::Stale)
            );
        }
    }

    #[test]
    fn a_stamped_signature_covers_every_field() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let sig = format!(
            "v1={}",
            hmac_hex("k", &[b"v1:", ts.as_bytes(), b":key-1:", b"{}"])
        );
        let check = |key: &[u8], at: i64| verify_stamped("k", "v1", &ts, &sig, &[key, b"{}"], at);
        assert_eq!(check(b"key-1", now + 299), Ok(()));
        assert_eq!(check(b"key-2", now), Err(StampError::Mismatch), "a new key");
        assert_eq!(check(b"key-1", now + 301), Err(StampError::Stale), "later");
        let old_style = sig.replacen("v1=", "sha256=", 1);
        assert_eq!(
            verify_stamped("k", "v1", &ts, &old_style, &[b"key-1", b"{}"], now),
            Err(StampError::Mismatch)
        );
    }

    #[test]
    fn hex_round_trip() {
        let sig = hmac_hex("k", &[b"body"]);
        assert!(verify_hex("k", &[b"body"], &sig));
        assert!(verify_hex("k", &[b"bo", b"dy"], &sig.to_uppercase()));
        assert!(!verify_hex("k", &[b"body!"], &sig));
        assert!(!verify_hex("k", &[b"body"], "zz"));
    }
}
