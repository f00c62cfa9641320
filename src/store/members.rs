//! The agents a mapping or an alias names, one row each: written by creation and by
//! `PATCH` alike, all of them in one statement.

use super::dialect::{self, Backend};

/// Whose agents: a mapping's default agents or an alias's members.
#[derive(Debug, Clone, Copy)]
pub(super) enum Members {
    Mapping,
    Alias,
}

impl Members {
    /// The table and its column naming the parent.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Members::Mapping => ("project_mapping_agents", "mapping_id"),
            Members::Alias => ("agent_alias_members", "alias_id"),
        }
    }

    /// Deletes the parent's (`$1`) agents.
    pub(super) fn delete_sql(self) -> String {
        let (table, parent) = self.table();
        format!("DELETE FROM {table} WHERE {parent} = $1")
    }

    /// Inserts `n` (parent, agent) rows; a repeated agent is one row.
    pub(super) fn insert_sql(self, backend: Backend, n: usize) -> String {
        let (table, parent) = self.table();
        format!(
            "INSERT INTO {table} ({parent}, agent_id) VALUES {} ON CONFLICT DO NOTHING",
            dialect::values(backend, n, 2, "")
        )
    }
}

/// Gives `$parent` the agents `$agents` (`&[AgentId]`) on `$tx`, a transaction in a
/// backend's arm of `on_writer!` (hence a macro). `replace` drops its old agents first;
/// otherwise they are added to. One statement per [`dialect::CHUNK`] agents, which keeps
/// the binds under SQLite's limit.
macro_rules! put_members {
    ($tx:expr, $backend:expr, $members:expr, $parent:expr, $agents:expr, replace = $replace:expr) => {
        async {
            let (members, parent): ($crate::store::members::Members, uuid::Uuid) =
                ($members, $parent);
            if $replace {
                sqlx::query(sqlx::AssertSqlSafe(members.delete_sql()))
                    .bind(parent)
                    .execute(&mut *$tx)
                    .await?;
            }
            for chunk in $agents.chunks($crate::store::dialect::CHUNK) {
                let sql = members.insert_sql($backend, chunk.len());
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for agent in chunk {
                    q = q.bind(parent).bind(*agent.as_uuid());
                }
                q.execute(&mut *$tx).await?;
            }
            Ok::<(), sqlx::Error>(())
        }
        .await
    };
}
pub(super) use put_members;
