//! The secrets the database keeps sealed (see [`crate::seal`]): every source's secret
//! and API token, and the secret settings (the generated JWT key). The store seals them
//! on the way in and opens them on the way out, so callers see [`Secret`]s only.
//!
//! The id of the key they are sealed with is kept beside them (`settings`), so a node
//! given another key refuses to start instead of failing every webhook later.

use std::sync::Arc;

use uuid::Uuid;

use super::dialect::{on_pool, on_writer};
use super::{Result, Secret, Store, StoreError};
use crate::seal::{SealError, SecretsKey, is_sealed};

/// The setting naming the key the secrets are sealed with.
const KEY_ID: &str = "secrets_key_id";

/// Settings whose values are secrets.
const SECRET_SETTINGS: [&str; 1] = ["jwt_secret"];

pub(super) fn source_slot(id: Uuid, column: &str) -> String {
    format!("sources/{id}/{column}")
}

/// Where a cost alert's webhook signing secret is sealed.
pub(super) fn alert_slot(id: Uuid) -> String {
    format!("cost_alerts/{id}/webhook_secret")
}

fn setting_slot(name: &str) -> String {
    format!("settings/{name}")
}

/// How a pass over the stored secrets treats each value.
enum Pass<'a> {
    /// Seal what is still plaintext (written before sealing existed); leave the rest.
    SealPlaintext(&'a SecretsKey),
    /// Open every value with the first key (plaintext as it is), seal it with the second.
    Rotate(&'a SecretsKey, &'a SecretsKey),
}

impl Pass<'_> {
    /// The value to store instead of `value`, if it changes.
    fn apply(&self, slot: &str, value: &str) -> Result<Option<String>> {
        let (old, new) = match self {
            Pass::SealPlaintext(_) if is_sealed(value) => return Ok(None),
            Pass::SealPlaintext(key) => (None, *key),
            Pass::Rotate(old, new) => (Some(*old), *new),
        };
        let plain = match old {
            Some(old) if is_sealed(value) => zeroize::Zeroizing::new(old.open(slot, value)?),
            _ => zeroize::Zeroizing::new(value.to_owned()),
        };
        Ok(Some(new.seal(slot, &plain)?))
    }
}

/// Runs `$pass` over every stored secret inside the transaction `$tx`, writing back each
/// value it changes (only if still as read, so two nodes sealing at once change it once);
/// evaluates to how many it changed. A macro, as the transaction's type is per backend.
macro_rules! reseal {
    ($tx:ident, $pass:ident) => {{
        let mut changed = 0u64;
        let sources: Vec<(Uuid, String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT id, secret, api_token, previous_secret FROM sources")
                .fetch_all(&mut *$tx)
                .await?;
        for (id, secret, token, previous) in sources {
            let columns = [
                ("secret", Some(secret)),
                ("api_token", token),
                ("previous_secret", previous),
            ];
            for (column, value) in columns {
                let Some(value) = value else { continue };
                let Some(new) = $pass.apply(&source_slot(id, column), &value)? else {
                    continue;
                };
                let sql =
                    format!("UPDATE sources SET {column} = $1 WHERE id = $2 AND {column} = $3");
                changed += sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(new)
                    .bind(id)
                    .bind(value)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
            }
        }
        let alerts: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, webhook_secret FROM cost_alerts WHERE webhook_secret IS NOT NULL",
        )
        .fetch_all(&mut *$tx)
        .await?;
        for (id, value) in alerts {
            let Some(new) = $pass.apply(&alert_slot(id), &value)? else {
                continue;
            };
            changed += sqlx::query(
                "UPDATE cost_alerts SET webhook_secret = $1 WHERE id = $2 AND webhook_secret = $3",
            )
            .bind(new)
            .bind(id)
            .bind(value)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        }
        for name in SECRET_SETTINGS {
            let value: Option<String> =
                sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *$tx)
                    .await?;
            let Some(value) = value else { continue };
            let Some(new) = $pass.apply(&setting_slot(name), &value)? else {
                continue;
            };
            changed += sqlx::query("UPDATE settings SET value = $1 WHERE name = $2 AND value = $3")
                .bind(new)
                .bind(name)
                .bind(value)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
        }
        changed
    }};
}

impl Store {
    fn key(&self) -> Result<&SecretsKey> {
        self.key
            .as_deref()
            .ok_or(StoreError::Sealed(SealError::NoKey))
    }

    pub(super) fn seal(&self, slot: &str, secret: &Secret) -> Result<String> {
        Ok(self.key()?.seal(slot, secret.expose())?)
    }

    pub(super) fn open(&self, slot: &str, sealed: &str) -> Result<Secret> {
        Ok(Secret::new(self.key()?.open(slot, sealed)?))
    }

    /// The id of the key this database's secrets are sealed with; `None` until a node
    /// or command has first used one on it.
    pub async fn secrets_key_id(&self) -> Result<Option<String>> {
        Ok(on_pool!(self, p => {
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(KEY_ID)
                .fetch_optional(p)
                .await
        })?)
    }

    /// Seals and opens secrets with `key` from now on. Refuses a key other than the one
    /// the database's secrets are sealed with ([`SealError::WrongKey`]); records it when
    /// none is recorded yet; seals any secret still in plaintext (a database from before
    /// sealing), in one transaction. Returns how many it sealed.
    pub async fn use_secrets_key(&mut self, key: SecretsKey) -> Result<u64> {
        let pass = Pass::SealPlaintext(&key);
        let sealed = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(KEY_ID)
                .bind(key.id())
                .execute(&mut *tx)
                .await?;
            let recorded: String = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(KEY_ID)
                .fetch_one(&mut *tx)
                .await?;
            if recorded != key.id() {
                return Err(StoreError::Sealed(SealError::WrongKey {
                    sealed_with: recorded,
                    given: key.id().to_owned(),
                }));
            }
            let n = reseal!(tx, pass);
            tx.commit().await?;
            n
        });
        self.key = Some(Arc::new(key));
        Ok(sealed)
    }

    /// Opens every secret with the current key and seals it with `new`, in one
    /// transaction, and records `new` as the key; from then on this store uses it.
    /// Returns how many values it re-sealed.
    pub async fn rotate_secrets_key(&mut self, new: SecretsKey) -> Result<u64> {
        let pass = Pass::Rotate(self.key()?, &new);
        let resealed = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = reseal!(tx, pass);
            sqlx::query("UPDATE settings SET value = $2 WHERE name = $1")
                .bind(KEY_ID)
                .bind(new.id())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        self.key = Some(Arc::new(new));
        Ok(resealed)
    }

    /// The secret setting `name`, storing `init()` (sealed) first if it has none. Racing
    /// nodes agree: the first insert wins and everyone reads it back.
    pub async fn secret_setting_or_init(
        &self,
        name: &str,
        init: impl FnOnce() -> String,
    ) -> Result<Secret> {
        let slot = setting_slot(name);
        let candidate = self.seal(&slot, &Secret::new(init()))?;
        let value = self.setting_or_init(name, || candidate).await?;
        self.open(&slot, &value)
    }
}
