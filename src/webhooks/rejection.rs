//! Why a webhook was refused, and the answer each reason gets.

use axum::http::StatusCode;

use crate::group_commit::SubmitError;
use crate::http::{ApiError, StorageFailure};
use crate::quota::{QuotaError, Refusal};
use crate::store::StoreError;

/// Why a webhook was refused; also the `reason` label of the rejection metric.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Signature(String),
    #[error("{0}")]
    UnknownSource(String),
    #[error("{0}")]
    Malformed(String),
    #[error("the body is larger than 1 MiB")]
    TooLarge,
    /// Over the source's tier rate: 429 with `Retry-After` (senders retry).
    #[error("{}", .0.message())]
    Quota(Refusal),
    #[error("storage is unavailable; retry later")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl Rejection {
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Rejection::Signature(_) => "bad_signature",
            Rejection::UnknownSource(_) => "unknown_source",
            Rejection::Malformed(_) => "malformed",
            Rejection::TooLarge => "too_large",
            Rejection::Quota(_) => "rate_limited",
            Rejection::Unavailable => "unavailable",
            Rejection::Internal => "internal",
        }
    }

    pub(super) fn into_api(self) -> ApiError {
        let (status, code) = match &self {
            Rejection::Quota(r) => return r.clone().into(),
            Rejection::Signature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            Rejection::UnknownSource(_) => (StatusCode::UNAUTHORIZED, "unknown_source"),
            Rejection::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            Rejection::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Rejection::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Rejection::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, self.to_string())
    }
}

impl From<SubmitError> for Rejection {
    fn from(e: SubmitError) -> Rejection {
        match e {
            SubmitError::Store(e) => Rejection::from(&*e),
            SubmitError::TimedOut(_) | SubmitError::Stopped => Rejection::Unavailable,
        }
    }
}

impl From<&StoreError> for Rejection {
    fn from(e: &StoreError) -> Rejection {
        match StorageFailure::from(e) {
            StorageFailure::Unavailable => Rejection::Unavailable,
            _ => Rejection::Internal,
        }
    }
}

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Rejection {
        Rejection::from(&e)
    }
}

impl From<QuotaError> for Rejection {
    fn from(e: QuotaError) -> Rejection {
        match e {
            QuotaError::Refused(r) => Rejection::Quota(r),
            QuotaError::Store(e) => Rejection::from(&e),
        }
    }
}
