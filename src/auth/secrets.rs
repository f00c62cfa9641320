//! Generation and hashing of client ids, client secrets and operator keys.
//!
//! Client secrets are 256 random bits, shown once, and stored as argon2id PHC strings.
//! Operator keys are also 256 random bits but are looked up on every API call, so
//! they are stored as SHA-256: with that much entropy a slow hash adds no security.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

pub fn generate_client_id() -> String {
    format!("nxc_{}", random_token(15))
}

pub fn generate_client_secret() -> String {
    format!("nxs_{}", random_token(32))
}

pub fn generate_operator_key() -> String {
    format!("nxk_{}", random_token(32))
}

/// Random bytes for a generated JWT signing secret, base64url encoded.
pub fn generate_jwt_secret() -> String {
    random_token(48)
}

/// argon2id with OWASP's second recommended profile (m = 12 MiB, t = 3, p = 1).
fn argon2() -> Argon2<'static> {
    let params = Params::new(12 * 1024, 3, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Slow by design: call from a blocking thread.
pub fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    // Encoding 16 bytes as a salt string and hashing with valid params cannot fail;
    // if it ever did, the empty hash would simply never verify.
    let Ok(salt) = SaltString::encode_b64(&salt) else {
        return String::new();
    };
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Slow by design: call from a blocking thread. A malformed stored hash never verifies.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => argon2().verify_password(secret.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

pub fn hash_operator_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_round_trip() {
        let secret = generate_client_secret();
        let hash = hash_secret(&secret);
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_secret(&secret, &hash));
        assert!(!verify_secret("nxs_wrong", &hash));
        assert!(!verify_secret(&secret, "not a phc string"));
    }

    #[test]
    fn generated_values_are_distinct_and_long() {
        let a = generate_client_secret();
        assert_ne!(a, generate_client_secret());
        assert!(a.len() >= 4 + 43);
        assert!(generate_operator_key().starts_with("nxk_"));
    }
}
