//! The key that seals stored secrets: where it comes from, and a first start's key file.

use std::path::PathBuf;

use super::AppError;
use crate::config::SecretsKeyOpts;
use crate::seal::{SealError, SecretsKey};
use crate::store::{self, Store, StoreError};

/// Loads the key that seals stored secrets and gives it to `store`, which refuses a key
/// other than the one its secrets are sealed with and seals what an older version left
/// in plaintext. Returns the key file used (`None`: the key came from the environment).
pub async fn open_secrets(
    store: &mut Store,
    database_url: &str,
    opts: &SecretsKeyOpts,
) -> Result<Option<PathBuf>, AppError> {
    let recorded = store.secrets_key_id().await?;
    let (key, file) = match key_source(database_url, opts)? {
        KeySource::Env(text) => (SecretsKey::parse("NEXUS_SECRETS_KEY", text), None),
        KeySource::File(file) => (read_or_create_key(&file, recorded.as_deref()), Some(file)),
    };
    let origin = file.as_ref().map_or_else(
        || "NEXUS_SECRETS_KEY".to_owned(),
        |f| format!("key file {}", f.display()),
    );
    let secrets_error = |source| AppError::Secrets {
        origin: origin.clone(),
        source,
    };
    let key = key.map_err(secrets_error)?;
    let sealed = store.use_secrets_key(key).await.map_err(|e| match e {
        StoreError::Sealed(source) => secrets_error(source),
        other => AppError::Store(other),
    })?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            "sealed the secrets an older version stored in plaintext"
        );
    }
    Ok(file)
}

enum KeySource<'a> {
    Env(&'a str),
    File(PathBuf),
}

/// `NEXUS_SECRETS_KEY`, else `--secrets-key-file`, else `FILE.key` beside a SQLite `FILE`.
fn key_source<'a>(database_url: &str, opts: &'a SecretsKeyOpts) -> Result<KeySource<'a>, AppError> {
    match (&opts.key, &opts.file, store::sqlite_file(database_url)) {
        (Some(_), Some(_), _) => Err(AppError::Config(
            "give the secrets key by NEXUS_SECRETS_KEY or by --secrets-key-file, not both".into(),
        )),
        (Some(text), None, _) => Ok(KeySource::Env(text)),
        (None, Some(file), _) => Ok(KeySource::File(file.clone())),
        (None, None, Some(db)) => {
            let mut file = db.into_os_string();
            file.push(".key");
            Ok(KeySource::File(file.into()))
        }
        (None, None, None) => Err(AppError::Config(
            "secrets are sealed with a key kept outside the database: on PostgreSQL set \
             NEXUS_SECRETS_KEY (the same on every node) or --secrets-key-file"
                .into(),
        )),
    }
}

/// The key in `file`. A missing file is created with a fresh key only while the database
/// has no secrets sealed (`recorded` is the key id they are sealed with): otherwise a
/// lost key file would silently become a new key that opens nothing.
fn read_or_create_key(
    file: &std::path::Path,
    recorded: Option<&str>,
) -> Result<SecretsKey, SealError> {
    if file.exists() {
        return SecretsKey::read_file(file);
    }
    if let Some(id) = recorded {
        return Err(SealError::KeyFile {
            path: file.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "missing, and this database's secrets are sealed with key {id}: restore \
                     the file from the backup taken with the database"
                ),
            ),
        });
    }
    match SecretsKey::create_file(file) {
        Ok(key) => {
            tracing::info!(path = %file.display(), key_id = key.id(),
                "created the secrets key file: back it up with the database");
            Ok(key)
        }
        // Another process (a node, a command) created it first.
        Err(SealError::KeyFile { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            SecretsKey::read_file(file)
        }
        Err(e) => Err(e),
    }
}
