//! Agent access tokens, minted with the node's secret (the tool generated it,
//! or the user passed it), exactly as `nexus token --agent` would.

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

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
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing an agent token")
}

/// A fresh random secret for a node the tool starts.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
