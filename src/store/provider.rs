//! The SaaS products Nexus mirrors, and their users as identities name them.

use nexus_proto::{ClickUpUserId, InvalidExternalId, SlackUserId};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};

/// The SaaS whose users and objects Nexus mirrors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Clickup,
    Slack,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Clickup => "clickup",
            Provider::Slack => "slack",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Provider> {
        match s {
            "clickup" => Ok(Provider::Clickup),
            "slack" => Ok(Provider::Slack),
            other => Err(StoreError::Corrupt(format!("provider {other:?}"))),
        }
    }
}

/// A provider's user: the provider decides which id type it is. Written as
/// `"provider": …, "external_user_id": …` (identities, the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(
    tag = "provider",
    content = "external_user_id",
    rename_all = "snake_case"
)]
pub enum ExternalUser {
    Clickup(ClickUpUserId),
    Slack(SlackUserId),
}

impl ExternalUser {
    pub fn parse(provider: Provider, id: &str) -> Result<ExternalUser, InvalidExternalId> {
        Ok(match provider {
            Provider::Clickup => ExternalUser::Clickup(id.parse()?),
            Provider::Slack => ExternalUser::Slack(id.parse()?),
        })
    }

    pub fn provider(&self) -> Provider {
        match self {
            ExternalUser::Clickup(_) => Provider::Clickup,
            ExternalUser::Slack(_) => Provider::Slack,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ExternalUser::Clickup(id) => id.as_str(),
            ExternalUser::Slack(id) => id.as_str(),
        }
    }
}

/// A user id type and the provider it belongs to, for looking agents up by many users.
pub trait ProviderUserId: AsRef<str> {
    const PROVIDER: Provider;
}

impl ProviderUserId for ClickUpUserId {
    const PROVIDER: Provider = Provider::Clickup;
}

impl ProviderUserId for SlackUserId {
    const PROVIDER: Provider = Provider::Slack;
}
