//! Agent access tokens, minted with the node's secret (the tool generated it,
//! or the user passed it), exactly as `nexus token --agent` would.
//!
//! HS256 by hand (three base64url parts, one HMAC): `jsonwebtoken`'s crypto features
//! would link RSA code into the workspace, which the node keeps out (see `auth::hs256`).

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    tenant_id: &'a str,
    client_id: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

pub fn mint(secret: &str, agent: &str, tenant: &str, client_id: &str) -> Result<String> {
    let iat = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: agent,
        tenant_id: tenant,
        client_id,
        iat,
        exp: iat + 3600,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let claims = serde_json::to_vec(&claims).context("encoding token claims")?;
    sign(secret, br#"{"alg":"HS256","typ":"JWT"}"#, &claims)
}

fn sign(secret: &str, header: &[u8], claims: &[u8]) -> Result<String> {
    let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).context("an HMAC key of any length")?;
    mac.update(signed.as_bytes());
    Ok(format!(
        "{signed}.{}",
        B64.encode(mac.finalize().into_bytes())
    ))
}

/// A fresh random secret for a node the tool starts.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_published_hs256_example() {
        // jwt.io's introductory example token.
        let token = sign(
            "your-256-bit-secret",
            br#"{"alg":"HS256","typ":"JWT"}"#,
            br#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#,
        )
        .expect("signs");
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
             eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
             SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
    }
}
