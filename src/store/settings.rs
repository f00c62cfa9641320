//! Node-wide settings the database keeps so every node (and every restart) agrees.

use super::dialect::on_writer;
use super::{Result, Store, StoreError};

impl Store {
    /// Returns the setting `name`, storing `init()` first if it has none.
    /// Racing nodes agree: the first insert wins and everyone reads it back.
    pub async fn setting_or_init(
        &self,
        name: &str,
        init: impl FnOnce() -> String,
    ) -> Result<String> {
        let candidate = init();
        let value: Option<String> = on_writer!(self, p => {
            sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(&candidate)
                .execute(p)
                .await?;
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(p)
                .await
        })?;
        value.ok_or(StoreError::NotFound("setting"))
    }
}
