//! Agent access tokens: HS256 JWTs; nothing but the configured algorithm verifies.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use nexus_proto::{AgentId, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: AgentId,
    pub tenant_id: TenantId,
    pub client_id: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

impl Claims {
    /// When the token was issued, in Unix ms: the UUIDv7 `jti` carries the millisecond
    /// (`iat` has only seconds, too coarse to refuse tokens issued "before now").
    pub fn issued_at_ms(&self) -> i64 {
        match self.jti.get_timestamp() {
            Some(ts) => {
                let (secs, nanos) = ts.to_unix();
                secs as i64 * 1000 + i64::from(nanos / 1_000_000)
            }
            None => self.iat.saturating_mul(1000),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

/// An issued token with its lifetime, as the token endpoint reports it.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
    pub claims: Claims,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> JwtKeys {
        super::hs256::install();
        let mut validation = Validation::new(Algorithm::HS256);
        // Tokens are issued and checked by the same fleet: no clock-skew allowance.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn issue(&self, agent: AgentId, tenant: TenantId, client_id: &str) -> IssuedToken {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: agent,
            tenant_id: tenant,
            client_id: client_id.to_owned(),
            iat,
            exp: iat + self.ttl.as_secs() as i64,
            jti: Uuid::now_v7(),
        };
        // HS256 over a plain struct cannot fail to encode.
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .unwrap_or_default();
        IssuedToken {
            access_token,
            expires_in: self.ttl.as_secs(),
            claims,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ttl: u64) -> JwtKeys {
        JwtKeys::new(
            b"test-secret-test-secret-test-secret",
            Duration::from_secs(ttl),
        )
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let k = keys(3600);
        let t = k.issue(AgentId::new_v7(), TenantId::new_v7(), "nxc_x");
        let claims = k.verify(&t.access_token).expect("valid");
        assert_eq!(claims, t.claims);
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn issue_time_has_milliseconds_from_the_jti() {
        let t = keys(60).issue(AgentId::new_v7(), TenantId::new_v7(), "c");
        let ms = t.claims.issued_at_ms();
        assert_eq!(ms / 1000, t.claims.iat);
        let v4 = Claims {
            jti: Uuid::new_v4(),
            ..t.claims
        };
        assert_eq!(v4.issued_at_ms(), v4.iat * 1000);
    }

    #[test]
    fn the_provider_verifies_the_published_hs256_example_and_nothing_else() {
        keys(60); // installs the provider
        // jwt.io's introductory example token.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
            SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_secret(b"your-256-bit-secret"),
            &v,
        )
        .expect("verifies");
        assert_eq!(decoded.claims["name"], "John Doe");
        let wrong = DecodingKey::from_secret(b"another-secret");
        assert!(jsonwebtoken::decode::<serde_json::Value>(token, &wrong, &v).is_err());
        // HS512 is not provided, even if asked for.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &serde_json::json!({}),
            &EncodingKey::from_secret(b"k"),
        );
        assert!(hs512.is_err());
    }

    #[test]
    fn other_secret_and_garbage_are_invalid() {
        let t = keys(60).issue(AgentId::new_v7(), TenantId::new_v7(), "c");
        let other = JwtKeys::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert!(matches!(
            other.verify(&t.access_token),
            Err(TokenError::Invalid)
        ));
        assert!(matches!(other.verify("a.b.c"), Err(TokenError::Invalid)));
    }

    #[test]
    fn alg_none_is_refused() {
        let k = keys(60);
        let t = k.issue(AgentId::new_v7(), TenantId::new_v7(), "c");
        let payload = t.access_token.split('.').nth(1).unwrap_or_default();
        // {"alg":"none","typ":"JWT"}
        let forged = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(matches!(k.verify(&forged), Err(TokenError::Invalid)));
    }
}
