//! The durable job queue's workers: claim with a lease, process, retry with backoff,
//! dead-letter, and sweep the leases of workers that died.
//!
//! Hand-rolled on the jobs table rather than a queue crate: accepting a webhook must
//! be one insert whose dedupe is atomic with everything else in the same database
//! (SQLite or PostgreSQL), and processors write their mappings in that database too.

pub mod ops;
mod worker;

pub use worker::{EnqueueError, JobOutcome, Queue};

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::state::AppState;
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

pub trait Processor: Send + Sync + 'static {
    fn process(&self, state: AppState, job: Job) -> BoxFuture<'static, Result<Done, JobError>>;
}

/// Processors by job kind. A kind with none completes with reason `no_processor`.
#[derive(Default, Clone)]
pub struct Processors {
    by_kind: HashMap<String, Arc<dyn Processor>>,
}

impl Processors {
    pub fn register(&mut self, kind: &str, p: Arc<dyn Processor>) {
        self.by_kind.insert(kind.to_owned(), p);
    }

    /// These processors plus `other`'s; `other` wins for a kind both have.
    pub fn merged(mut self, other: Processors) -> Processors {
        self.by_kind.extend(other.by_kind);
        self
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn Processor>> {
        self.by_kind.get(kind).cloned()
    }
}
