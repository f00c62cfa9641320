//! The durable job queue's workers: claim with a lease, process, retry with backoff,
//! dead-letter, and sweep the leases of workers that died.
//!
//! Hand-rolled on the jobs table rather than a queue crate: accepting a webhook must
//! be one insert whose dedupe is atomic with everything else in the same database
//! (SQLite or PostgreSQL), and processors write their mappings in that database too.

mod gauges;
pub mod ops;
mod worker;

pub use worker::{JobOutcome, Queue};

use futures_util::future::BoxFuture;

use crate::store::Job;

/// What a processor says about a job it could not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying later (a provider's 5xx or 429, a timeout, storage unavailable).
    #[error("{message}")]
    Transient {
        message: String,
        /// The provider asked us to wait at least this long (`Retry-After`), in ms.
        retry_after_ms: Option<u64>,
    },
    /// Not this attempt's failure: what it needs is busy (another worker is making the
    /// same write). Runs again after `after_ms` without spending an attempt.
    #[error("{message}")]
    Later { message: String, after_ms: u64 },
    /// Retrying cannot help (unparseable payload, a provider's 4xx): dead at once.
    #[error("{reason}: {message}")]
    Permanent {
        reason: &'static str,
        message: String,
    },
}

impl JobError {
    pub fn transient(message: impl Into<String>) -> JobError {
        JobError::Transient {
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn permanent(reason: &'static str, message: impl Into<String>) -> JobError {
        JobError::Permanent {
            reason,
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for JobError {
    /// A missing row will not appear by retrying; anything else about storage might pass.
    fn from(e: crate::store::StoreError) -> JobError {
        match e {
            crate::store::StoreError::NotFound(what) => {
                JobError::permanent("not_found", format!("{what} not found"))
            }
            other => JobError::transient(other.to_string()),
        }
    }
}

/// A job finished; `reason` tells why it did nothing when it did nothing (`unmapped`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    pub reason: Option<&'static str>,
}

impl Done {
    pub fn because(reason: &'static str) -> Result<Done, JobError> {
        Ok(Done {
            reason: Some(reason),
        })
    }
}

/// Runs jobs. The node has one, which picks the work by [`JobKind`]; the queue only
/// leases, retries and records.
pub trait Processor: Send + Sync + 'static {
    fn process(&self, job: Job) -> BoxFuture<'static, Result<Done, JobError>>;
}

/// The kinds of job Nexus makes; the `kind` column holds [`JobKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A ClickUp webhook (`clickup.event`).
    ClickUpEvent,
    /// A Slack Events API callback (`slack.event`).
    SlackEvent,
    /// A generic webhook delivered by its source's rule (`ingest.deliver`).
    IngestDeliver,
    /// An agent's `tool_request` (`tool.call`).
    ToolCall,
    /// A cost alert that fired, to its webhook (`alert.send`).
    AlertSend,
}

impl JobKind {
    pub const ALL: [JobKind; 5] = [
        JobKind::ClickUpEvent,
        JobKind::SlackEvent,
        JobKind::IngestDeliver,
        JobKind::ToolCall,
        JobKind::AlertSend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::ClickUpEvent => "clickup.event",
            JobKind::SlackEvent => "slack.event",
            JobKind::IngestDeliver => "ingest.deliver",
            JobKind::ToolCall => "tool.call",
            JobKind::AlertSend => "alert.send",
        }
    }

    /// `None` for a kind this version does not make (an embedder's own, or a newer one).
    pub fn parse(kind: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}
