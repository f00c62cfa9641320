//! Secrets at rest: source secrets, provider tokens and the generated JWT key are kept in
//! the database sealed (XChaCha20-Poly1305) with a key that is not in the database.
//!
//! A sealed value reads `sealed:v1:<key id>:<base64url(nonce ‖ ciphertext)>`. The key id
//! (a hash of the key, never the key) tells which key sealed it, so a node started with
//! another key says so instead of failing to verify every webhook. Each value is bound
//! to its place (`slot`: the table, row and column) as associated data, so a sealed value
//! copied into another row does not open.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "{origin} is not a secrets key: {why} (give 32 random bytes in base64 or hex, \
         e.g. from `openssl rand -base64 32`)"
    )]
    InvalidKey { origin: String, why: &'static str },
    #[error("secrets key file {}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "this database's secrets are sealed with key {sealed_with}, not with the given key \
         ({given}): start with the key they were sealed with (restore the key file from the \
         backup taken with the database, or set NEXUS_SECRETS_KEY)"
    )]
    WrongKey { sealed_with: String, given: String },
    #[error("a sealed value is malformed: {0}")]
    Malformed(&'static str),
    #[error("a sealed value does not open: it was altered or moved from another row")]
    Tampered,
    #[error("no secrets key was loaded to open this database's secrets")]
    NoKey,
}

/// The 256-bit key that seals secrets. No `Debug` of its bytes: it prints its id only.
pub struct SecretsKey {
    bytes: Zeroizing<[u8; 32]>,
    id: String,
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretsKey({})", self.id)
    }
}

impl SecretsKey {
    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> SecretsKey {
        let mut h = Sha256::new();
        h.update(b"nexus secrets key id\0");
        h.update(bytes.as_slice());
        let id = hex::encode(&h.finalize()[..8]);
        SecretsKey { bytes, id }
    }

    pub fn generate() -> SecretsKey {
        SecretsKey::from_bytes(Zeroizing::new(rand::random()))
    }

    /// A key written as base64 (padded or not) or hex; `origin` names where it came from
    /// in the error.
    pub fn parse(origin: &str, text: &str) -> Result<SecretsKey, SealError> {
        let text = text.trim();
        let invalid = |why| SealError::InvalidKey {
            origin: origin.to_owned(),
            why,
        };
        let decoded = Zeroizing::new(if text.len() == 64 {
            hex::decode(text).map_err(|_| invalid("not hex"))?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| STANDARD_NO_PAD.decode(text))
                .map_err(|_| invalid("neither base64 nor hex"))?
        });
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| invalid("not 32 bytes long"))?;
        Ok(SecretsKey::from_bytes(Zeroizing::new(bytes)))
    }

    /// Hex of a hash of the key: safe to log and to keep in the database.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let key: &Key = (&*self.bytes).into();
        XChaCha20Poly1305::new(key)
    }

    /// Seals `plaintext` for `slot` under a fresh random nonce.
    pub fn seal(&self, slot: &str, plaintext: &str) -> Result<String, SealError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: slot.as_bytes(),
        };
        // Fails only for messages of 256 GiB and more.
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher()
                .encrypt(&XNonce::from(nonce), payload)
                .map_err(|_| SealError::Malformed("too long to seal"))?,
        );
        Ok(format!(
            "{PREFIX}{}:{}",
            self.id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Opens a value [`SecretsKey::seal`] sealed for the same `slot`.
    pub fn open(&self, slot: &str, sealed: &str) -> Result<String, SealError> {
        let rest = sealed
            .strip_prefix(PREFIX)
            .ok_or(SealError::Malformed("not sealed"))?;
        let (id, data) = rest
            .split_once(':')
            .ok_or(SealError::Malformed("no key id"))?;
        if id != self.id {
            return Err(SealError::WrongKey {
                sealed_with: id.to_owned(),
                given: self.id.clone(),
            });
        }
        let data = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| SealError::Malformed("not base64"))?;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed("too short"));
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SealError::Malformed("too short"))?;
        let payload = Payload {
            msg: ciphertext,
            aad: slot.as_bytes(),
        };
        let plain = self
            .cipher()
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SealError::Tampered)?;
        String::from_utf8(plain).map_err(|_| SealError::Malformed("not UTF-8"))
    }

    /// Reads the key kept in the file at `path`.
    pub fn read_file(path: &Path) -> Result<SecretsKey, SealError> {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|source| key_file(path, source))?);
        warn_if_readable_by_others(path);
        SecretsKey::parse(&format!("the key file {}", path.display()), &text)
    }

    /// Creates the file at `path` (mode 0600; never over an existing one) holding a
    /// fresh key.
    pub fn create_file(path: &Path) -> Result<SecretsKey, SealError> {
        let key = SecretsKey::generate();
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(*key.bytes)));
        let write = || -> std::io::Result<()> {
            let mut file = create_private(path)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        write().map_err(|source| key_file(path, source))?;
        Ok(key)
    }
}

fn key_file(path: &Path, source: std::io::Error) -> SealError {
    SealError::KeyFile {
        path: path.to_owned(),
        source,
    }
}

/// Whether `value` was sealed (by any key); anything else is plaintext from a database
/// older than sealing.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// Creates a new file only its owner may read or write (0600), failing if it exists.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// A key file others can read is worth a warning, not a refusal: mounted secrets
/// (Kubernetes' default is 0644) are often readable to the pod's other users only.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777),
                "the secrets key file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_slot() {
        let key = SecretsKey::generate();
        let sealed = key
            .seal("sources/1/secret", "hunter2-hunter2")
            .expect("seal");
        assert!(is_sealed(&sealed) && !sealed.contains("hunter2"));
        assert_eq!(
            key.open("sources/1/secret", &sealed).expect("open"),
            "hunter2-hunter2"
        );
        assert!(matches!(
            key.open("sources/2/secret", &sealed),
            Err(SealError::Tampered)
        ));
        let other = SecretsKey::generate();
        assert!(matches!(
            other.open("sources/1/secret", &sealed),
            Err(SealError::WrongKey { .. })
        ));
        // A sealed value under the same key id but altered does not open either.
        let at = sealed.len() - 10;
        let flipped = if &sealed[at..=at] == "A" { "B" } else { "A" };
        let altered = format!("{}{flipped}{}", &sealed[..at], &sealed[at + 1..]);
        assert!(matches!(
            key.open("sources/1/secret", &altered),
            Err(SealError::Tampered)
        ));
        assert_ne!(
            key.seal("s", "x").ok(),
            key.seal("s", "x").ok(),
            "fresh nonces"
        );
    }

    #[test]
    fn keys_parse_from_base64_or_hex_and_bad_ones_say_why() {
        let hex = "00".repeat(32);
        let b64 = STANDARD.encode([0u8; 32]);
        let a = SecretsKey::parse("NEXUS_SECRETS_KEY", &hex).expect("hex");
        let b = SecretsKey::parse("NEXUS_SECRETS_KEY", &format!("{b64}\n")).expect("b64");
        assert_eq!(a.id(), b.id());
        let short = SecretsKey::parse("NEXUS_SECRETS_KEY", &STANDARD.encode([0u8; 16]));
        let msg = short.map(|_| ()).expect_err("short").to_string();
        assert!(
            msg.contains("NEXUS_SECRETS_KEY") && msg.contains("32 bytes"),
            "{msg}"
        );
        assert!(SecretsKey::parse("k", "not a key!").is_err());
        assert_eq!(format!("{a:?}"), format!("SecretsKey({})", a.id()));
    }

    #[test]
    fn key_files_are_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nexus.db.key");
        let key = SecretsKey::create_file(&path).expect("create");
        assert_eq!(SecretsKey::read_file(&path).expect("read").id(), key.id());
        assert!(SecretsKey::create_file(&path).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
