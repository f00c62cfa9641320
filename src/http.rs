//! What every handler answers with and reads through: the one error envelope of
//! every non-OAuth endpoint (`{"error":{"code","message","details"?}}`; `details` names
//! the bad fields of a request; internal details are logged, never sent) and the
//! extractors whose rejections use it.

use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::quota::{QuotaError, Refusal};
use crate::store::StoreError;
use crate::telemetry::catalog;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// What the caller can fix, e.g. `{"fields":{"name":"…"}}`.
    pub details: Option<serde_json::Value>,
    /// Seconds for `Retry-After`: a rate limit's wait (every 503 gets one anyway).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 `invalid` naming each bad field and what is wrong with it.
    pub fn invalid_fields<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> ApiError {
        let fields: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(f, why)| (f.to_owned(), why.into()))
            .collect();
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        let message = format!("invalid {}", names.join(", "));
        ApiError {
            details: Some(json!({ "fields": fields })),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let body = json!({ "error": error });
        let mut resp = (self.status, Json(body)).into_response();
        // Every 503 is "not now": say when to come back.
        let unavailable = (self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_S);
        if let Some(wait) = self.retry_after.or(unavailable) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        resp
    }
}

/// What a 503 asks the caller to wait, in seconds.
pub const RETRY_AFTER_S: u64 = 1;

/// Logs and counts a storage wait given up after `bound` (`what`: the request kind).
pub fn storage_timed_out(what: &'static str, bound: Duration) {
    tracing::warn!(
        what,
        ?bound,
        "storage did not answer in time; answering retry later"
    );
    metrics::counter!(catalog::DATABASE_TIMEOUTS, "what" => what).increment(1);
}

/// Answers 503 (with `Retry-After`) for a request whose handler has not answered within
/// `bound`: the database stopped answering mid-request, and a sender that waits past
/// its own timeout would retry anyway. The REST API runs under it.
pub async fn answer_within(bound: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(bound, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            storage_timed_out("api", bound);
            ApiError::unavailable("storage did not answer in time; retry later").into_response()
        }
    }
}

impl From<crate::presence::PresenceError> for ApiError {
    fn from(e: crate::presence::PresenceError) -> ApiError {
        tracing::warn!(error = %e, "presence unavailable");
        ApiError::unavailable("presence (redis) is unavailable; retry later")
    }
}

/// How a storage error reaches a caller: the one mapping every endpoint uses (the API
/// envelope, webhooks, the OAuth endpoint). Classifying logs and counts it once.
pub enum StorageFailure {
    NotFound(&'static str),
    Conflict(&'static str),
    /// Down or contended: worth retrying, so 503.
    Unavailable,
    Internal,
}

impl From<&StoreError> for StorageFailure {
    fn from(e: &StoreError) -> StorageFailure {
        match e {
            StoreError::NotFound(what) => StorageFailure::NotFound(what),
            StoreError::Conflict(what) => StorageFailure::Conflict(what),
            e if e.is_transient() => {
                tracing::warn!(error = %e, "database unavailable or contended");
                metrics::counter!(catalog::DATABASE_ERRORS).increment(1);
                StorageFailure::Unavailable
            }
            other => {
                tracing::error!(error = %other, "storage error");
                metrics::counter!(catalog::DATABASE_ERRORS).increment(1);
                StorageFailure::Internal
            }
        }
    }
}

impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> ApiError {
        match StorageFailure::from(e) {
            StorageFailure::NotFound(what) => ApiError::not_found(what),
            StorageFailure::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            StorageFailure::Unavailable => {
                ApiError::unavailable("storage is unavailable; retry later")
            }
            StorageFailure::Internal => ApiError::internal(),
        }
    }
}

/// Rates: 429 with `Retry-After`. Counts: 403, as waiting frees nothing.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let status = match r.retry_after {
            Some(_) => StatusCode::TOO_MANY_REQUESTS,
            None => StatusCode::FORBIDDEN,
        };
        let details = json!({ "quota": r.quota.as_str(), "tier": r.tier, "limit": r.limit });
        let mut e = ApiError::new(status, "quota_exceeded", r.message());
        e.details = Some(details);
        e.retry_after = r
            .retry_after
            .map(|d| d.as_secs_f64().ceil().max(1.0) as u64);
        e
    }
}

impl From<QuotaError> for ApiError {
    fn from(e: QuotaError) -> ApiError {
        match e {
            QuotaError::Refused(r) => r.into(),
            QuotaError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::from(&e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let status = r.status();
        let (status, code) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => (status, "payload_too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (status, "unsupported_media_type"),
            // Well-formed JSON of the wrong shape is as much a bad request as bad JSON.
            _ => (StatusCode::BAD_REQUEST, "invalid_request"),
        };
        ApiError::new(status, code, r.body_text())
    }
}

/// `Json` that reports bad bodies in the envelope instead of axum's plain text.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", r.body_text())
    }
}

/// `Path` whose rejection (say, a malformed id) uses the envelope.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Query` whose rejection uses the envelope.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

// What `ApiError` writes, as the OpenAPI document describes it (a test reads an answer
// back through it, so the two cannot drift).
/// The error envelope of every endpoint but `POST /auth/token`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable and machine-readable (`invalid_request`, `not_found`, `unavailable`…).
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// What was wrong, where the endpoint can say (`{"fields":{"name":"…"}}`).
    #[serde(default)]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The error answers of an endpoint, for its `#[utoipa::path(responses(…))]`: each
/// type is one or more statuses answered with the envelope.
pub mod responses {
    use std::collections::BTreeMap;

    use utoipa::openapi::header::Header;
    use utoipa::openapi::response::{Response, ResponseBuilder};
    use utoipa::openapi::schema::{Ref, Type};
    use utoipa::openapi::{Content, ObjectBuilder, RefOr};

    fn envelope(description: &str) -> ResponseBuilder {
        let schema = Ref::from_schema_name("ErrorBody");
        ResponseBuilder::new()
            .description(description)
            .content("application/json", Content::new(Some(schema)))
    }

    fn answers(list: &[(&str, Response)]) -> BTreeMap<String, RefOr<Response>> {
        list.iter()
            .map(|(status, r)| ((*status).to_owned(), RefOr::T(r.clone())))
            .collect()
    }

    macro_rules! errors {
        ($($(#[$doc:meta])* $name:ident => [$(($status:literal, $description:literal)),+];)+) => {$(
            $(#[$doc])*
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    answers(&[$(($status, envelope($description).build())),+])
                }
            }
        )+};
    }

    errors! {
        /// A malformed path, query or body, or a value the endpoint refuses.
        BadRequest => [("400", "Malformed or invalid input (`invalid_request`; `invalid` with `details.fields` naming each bad field).")];
        /// What the path names does not exist, or is another tenant's.
        NotFound => [("404", "Not found, or not this key's tenant's (`not_found`).")];
        /// The state of the target refuses the action.
        Conflict => [("409", "The target's state refuses this (the `code` says why).")];
        /// What a JSON body can be refused for besides its content.
        BodyErrors => [
            ("413", "The body is over `--max-body-bytes` (`payload_too_large`)."),
            ("415", "The body is not `application/json` (`unsupported_media_type`).")
        ];
    }

    /// What every operator endpoint may answer: 401 (no key, or an unknown or revoked
    /// one), 403 (the key lacks the scope) and 503 (storage did not answer in time).
    pub struct OperatorErrors;

    impl utoipa::IntoResponses for OperatorErrors {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            let mut all = answers(&[
                (
                    "401",
                    envelope("No operator key, or an unknown or revoked one (`unauthorized`).")
                        .build(),
                ),
                (
                    "403",
                    envelope("The key lacks the scope this needs (`forbidden`).").build(),
                ),
            ]);
            all.append(&mut Unavailable::responses());
            all
        }
    }

    /// 503 with `Retry-After`: storage (or Redis) did not answer in time.
    pub struct Unavailable;

    impl utoipa::IntoResponses for Unavailable {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            let seconds = ObjectBuilder::new().schema_type(Type::Integer);
            let retry = Header::new(seconds);
            let unavailable =
                envelope("Storage did not answer in time; retry later (`unavailable`).")
                    .header("Retry-After", retry)
                    .build();
            answers(&[("503", unavailable)])
        }
    }
}
