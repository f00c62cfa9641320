//! Who a message names: `@alias` as plain text, Slack user groups
//! (`<!subteam^S1|@ai_squad>`) and Slack users (`<@U123>`).

use std::collections::BTreeSet;

use nexus_proto::{AgentId, SlackUserId, TenantId};

use crate::store::{Store, StoreError};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    /// Alias names, without `@`, as written.
    pub aliases: BTreeSet<String>,
    /// Slack user ids from `<@U…>`.
    pub slack_users: BTreeSet<SlackUserId>,
}

fn name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

impl Mentions {
    /// More names than this in one message are not looked up (a pasted member list is
    /// not a call).
    pub const MAX_NAMES: usize = 20;

    pub fn parse(text: &str) -> Mentions {
        let mut m = Mentions::default();
        for (i, _) in text.match_indices('@') {
            let before = text[..i].chars().next_back();
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| name_char(*c))
                .collect();
            let name = name.trim_end_matches(['.', '-']);
            if name.is_empty() {
                continue;
            }
            match before {
                // `<@U123>` or `<@U123|name>`: a Slack user (if it reads as one).
                Some('<') => {
                    m.slack_users.extend(name.parse().ok());
                }
                // `user@example.com` is an address, not a mention.
                Some(c) if name_char(c) => {}
                // Plain `@AI_Squad`, or the `|@ai_squad` label of a user group.
                _ => {
                    m.aliases.insert(name.to_owned());
                }
            }
            if m.aliases.len() + m.slack_users.len() >= Mentions::MAX_NAMES {
                break;
            }
        }
        m
    }

    /// Active agents behind the named aliases (and, for Slack, the named users).
    pub async fn agents(
        &self,
        store: &Store,
        tenant: TenantId,
    ) -> Result<Vec<(AgentId, String)>, StoreError> {
        let mut out = Vec::new();
        for alias in &self.aliases {
            for agent in store.alias_agent_ids(tenant, alias).await? {
                out.push((agent, format!("alias:{alias}")));
            }
        }
        let users: Vec<SlackUserId> = self.slack_users.iter().cloned().collect();
        for agent in store.agents_by_identity(tenant, &users).await? {
            out.push((agent, "mention".to_owned()));
        }
        out.sort_by_key(|(a, _)| *a);
        out.dedup_by_key(|(a, _)| *a);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<T: std::str::FromStr<Err: std::fmt::Debug> + Ord>(items: &[&str]) -> BTreeSet<T> {
        items.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn finds_plain_aliases_user_groups_and_users() {
        let m = Mentions::parse(
            "hey @AI_Squad, <!subteam^S0614TZR7|@ai-ops> and <@U024BE7LH|bob>: look.",
        );
        assert_eq!(m.aliases, set(&["AI_Squad", "ai-ops"]));
        assert_eq!(m.slack_users, set(&["U024BE7LH"]));
    }

    #[test]
    fn ignores_addresses_bare_at_signs_and_trailing_punctuation() {
        let m = Mentions::parse("mail ops@example.com @ noon, ask @triage.");
        assert_eq!(m.aliases, set(&["triage"]));
        assert!(m.slack_users.is_empty());
    }

    #[test]
    fn stops_after_twenty_names() {
        let text: String = (0..50).map(|i| format!("@a{i} ")).collect();
        assert_eq!(Mentions::parse(&text).aliases.len(), Mentions::MAX_NAMES);
    }
}
