//! The ClickUp API v2: read a task, comment on it (and find a comment again), change its
//! status.

use nexus_proto::{ClickUpListId, ClickUpTaskId, ClickUpUserId};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ProviderError, call, endpoint};
use crate::store::Secret;

const NAME: &str = "ClickUp";

#[derive(Clone)]
pub struct ClickUpApi {
    http: reqwest::Client,
    base: Url,
}

/// The parts of a ClickUp task the mirror uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickUpTask {
    pub id: ClickUpTaskId,
    pub name: String,
    pub status: String,
    pub url: String,
    pub list_id: ClickUpListId,
    pub assignees: Vec<ClickUpUserId>,
    pub description: String,
}

#[derive(Deserialize)]
struct TaskBody {
    id: ClickUpTaskId,
    #[serde(default)]
    name: String,
    status: Option<StatusBody>,
    #[serde(default)]
    url: String,
    /// Every task is in a list; without one it is not a task the mirror can place.
    list: IdBody<ClickUpListId>,
    #[serde(default)]
    assignees: Vec<IdBody<ClickUpUserId>>,
    #[serde(default)]
    text_content: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

#[derive(Deserialize)]
struct IdBody<T> {
    id: T,
}

/// ClickUp ids arrive as numbers or strings; both become the same text (for the ids
/// Nexus only compares and stores: comments, history items).
pub fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl ClickUpApi {
    pub(super) fn new(http: reqwest::Client, base: Url) -> ClickUpApi {
        ClickUpApi { http, base }
    }

    /// ClickUp takes the personal or OAuth token as the bare `Authorization` value.
    fn auth(token: &Secret) -> Result<HeaderValue, ProviderError> {
        let mut value =
            HeaderValue::from_str(token.expose()).map_err(|_| ProviderError::Permanent {
                provider: NAME,
                message: "the tenant's ClickUp API token is not a valid header value".into(),
            })?;
        value.set_sensitive(true);
        Ok(value)
    }

    pub async fn get_task(
        &self,
        token: &Secret,
        task_id: &ClickUpTaskId,
    ) -> Result<ClickUpTask, ProviderError> {
        let req = self
            .http
            .get(endpoint(&self.base, &["task", task_id.as_str()]))
            .header(AUTHORIZATION, Self::auth(token)?);
        task(call(NAME, req).await?)
    }

    /// Returns the new comment's id.
    pub async fn create_comment(
        &self,
        token: &Secret,
        task_id: &ClickUpTaskId,
        text: &str,
    ) -> Result<String, ProviderError> {
        let req = self
            .http
            .post(endpoint(&self.base, &["task", task_id.as_str(), "comment"]))
            .header(AUTHORIZATION, Self::auth(token)?)
            .json(&json!({ "comment_text": text, "notify_all": false }));
        comment_id(&call(NAME, req).await?)
    }

    /// Comments on the task whose text is `text`, made no earlier than `since_ms` (by
    /// ClickUp's `date`), newest first: where a comment a crashed attempt made and never
    /// recorded would be. ClickUp comments carry no metadata: text and time identify it.
    pub async fn find_comments(
        &self,
        token: &Secret,
        task_id: &ClickUpTaskId,
        since_ms: i64,
        text: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let req = self
            .http
            .get(endpoint(&self.base, &["task", task_id.as_str(), "comment"]))
            .header(AUTHORIZATION, Self::auth(token)?);
        let answer = call(NAME, req).await?;
        let comments = answer["comments"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(comments
            .iter()
            .filter_map(|c| {
                let date = match &c["date"] {
                    Value::String(s) => s.parse::<i64>().ok()?,
                    other => other.as_i64()?,
                };
                let same = c["comment_text"].as_str()?.trim() == text.trim();
                (same && date >= since_ms).then(|| id_text(&c["id"]))
            })
            .collect())
    }

    pub async fn update_status(
        &self,
        token: &Secret,
        task_id: &ClickUpTaskId,
        status: &str,
    ) -> Result<ClickUpTask, ProviderError> {
        let req = self
            .http
            .put(endpoint(&self.base, &["task", task_id.as_str()]))
            .header(AUTHORIZATION, Self::auth(token)?)
            .json(&json!({ "status": status }));
        task(call(NAME, req).await?)
    }
}

/// The id of the comment ClickUp created.
pub(crate) fn comment_id(answer: &Value) -> Result<String, ProviderError> {
    match &answer["id"] {
        Value::Null => Err(ProviderError::Transient {
            provider: NAME,
            message: "the comment was created without an id".into(),
            retry_after_ms: None,
        }),
        id => Ok(id_text(id)),
    }
}

/// A task as `GET` and `PUT /task/{id}` answer it.
pub(crate) fn task(body: Value) -> Result<ClickUpTask, ProviderError> {
    let t: TaskBody = serde_json::from_value(body).map_err(|e| ProviderError::Transient {
        provider: NAME,
        message: format!("unexpected task shape: {e}"),
        retry_after_ms: None,
    })?;
    Ok(ClickUpTask {
        id: t.id,
        name: t.name,
        status: t.status.map(|s| s.status).unwrap_or_default(),
        url: t.url,
        list_id: t.list.id,
        assignees: t.assignees.into_iter().map(|a| a.id).collect(),
        description: t.text_content.or(t.description).unwrap_or_default(),
    })
}
