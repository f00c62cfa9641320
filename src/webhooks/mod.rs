//! Webhook intake: verify, dedupe, commit a job, answer. Nothing else happens in the
//! request — processing is the queue's — so the answer is fast and flat under load.
//!
//! The contract (DESIGN §10): 2xx only after the job is committed; a duplicate is 200
//! without a second job; bad signature 401, malformed 400, too large 413, storage
//! down 503 — never 200 for anything not stored.

mod clickup;
mod ingest;
mod putio;
mod rejection;
mod signature;
mod slack;
mod suspended;

pub use rejection::Rejection;
pub use signature::{hmac_hex, verify_slack};

use clickup::ClickUp;
use ingest::Ingest;
use putio::Putio;
use slack::Slack;

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::http::{ApiError, ApiJson, ApiPath};
use crate::queue::JobKind;
use crate::state::AppState;
use crate::store::{Enqueued, NewJob, Source, SourceKind, Store, StoreError};
use crate::telemetry::catalog;

/// Slack and ClickUp payloads are small; 1 MiB leaves room and bounds memory.
const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/slack", post(receive::<Slack>))
        .route("/slack/{id}", post(receive_for::<Slack>))
        .route("/clickup", post(receive::<ClickUp>))
        .route("/clickup/{id}", post(receive_for::<ClickUp>))
        .route("/ingest/{id}", post(receive_for::<Ingest>))
        .route("/putio/{token}", post(receive_for::<Putio>))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
}

/// What differs between senders; the receive path around it ([`handle`]) is one.
trait Sender: Send + Sync + 'static {
    /// The `source` label of the webhook metrics.
    const NAME: &'static str;
    const SOURCE: SourceKind;
    /// The body's type; parsed once, here, and again by the job from the stored bytes.
    type Body: DeserializeOwned + Send + Sync;
    /// What the body is, for "the body is not {WHAT}: …".
    const WHAT: &'static str;
    /// Why no source was found for a body that names one.
    const UNKNOWN: &'static str;

    /// The body as this sender writes it; the error is kept until it matters (see
    /// [`handle`]).
    fn parse(raw: &[u8]) -> Result<Self::Body, String> {
        serde_json::from_slice(raw).map_err(|e| format!("the body is not {}: {e}", Self::WHAT))
    }

    /// The source the URL names: by its id, unless the sender's URL carries something
    /// else (put.io's token).
    fn named(state: &AppState, id: &str) -> impl Future<Output = Result<Source, Rejection>> + Send {
        source_by_id(state, id, Self::SOURCE)
    }

    /// The sources that may have signed `body` when the URL names none.
    fn candidates(
        store: &Store,
        body: &Self::Body,
    ) -> impl Future<Output = Result<Vec<Source>, Rejection>> + Send;

    /// Whether `source` signed this request.
    fn verify(source: &Source, req: &Request<'_>) -> Result<(), Rejection>;

    /// The source the body says it is for (Slack's `team_id`, ClickUp's `webhook_id`),
    /// which must be the one named in the URL.
    fn claims(body: &Self::Body) -> Option<&str>;

    /// The job's kind and the delivery's id (scoped to the source by [`handle`]), or an
    /// answer that needs no job.
    fn route(body: Self::Body, req: &Request<'_>) -> Result<Route, Rejection>;

    /// What the job keeps of the request: the raw body, as it arrived, unless it carries
    /// something that must not be stored.
    fn stored<'a>(_body: &Self::Body, raw: &'a [u8]) -> Result<Cow<'a, [u8]>, Rejection> {
        Ok(Cow::Borrowed(raw))
    }
}

/// The request as senders see it.
struct Request<'a> {
    headers: &'a HeaderMap,
    raw: &'a [u8],
    /// Unix seconds, from the node's clock (Slack's timestamp window).
    now_s: i64,
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) enum Route {
    Job { kind: JobKind, dedupe_key: String },
    Answer(Received),
}

/// What a webhook came to: the answer's body, and the `outcome` label of its metric.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Received {
    Accepted {
        job_id: Uuid,
    },
    /// The sender's retry of a delivery already stored: no second job.
    Duplicate {
        job_id: Uuid,
    },
    /// Slack's `url_verification`: the challenge echoed.
    Verified {
        challenge: String,
    },
    /// Acknowledged, nothing to do (`app_rate_limited`, future envelope types).
    Ignored,
    /// Stored as a dead job, not processed: its tenant is suspended (`reason`). 200 all
    /// the same, so the provider keeps the webhook enabled.
    Dropped {
        job_id: Uuid,
        reason: &'static str,
    },
}

impl Received {
    fn outcome(&self) -> &'static str {
        match self {
            Received::Accepted { .. } => "accepted",
            Received::Duplicate { .. } => "duplicate",
            Received::Verified { .. } => "verified",
            Received::Ignored => "ignored",
            Received::Dropped { .. } => "dropped",
        }
    }
}

async fn receive<S: Sender>(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<Received>, ApiError> {
    answer(
        S::NAME,
        bounded(&state, handle::<S>(&state, None, &headers, raw)).await,
    )
}

async fn receive_for<S: Sender>(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<Received>, ApiError> {
    let handled = handle::<S>(&state, Some(&id), &headers, raw);
    answer(S::NAME, bounded(&state, handled).await)
}

/// Whatever storage does, the sender hears back within `--db-request-timeout`: 503
/// when it did not answer (the sender's retry is deduplicated if the job did commit).
async fn bounded(
    state: &AppState,
    handled: impl Future<Output = Result<Received, Rejection>>,
) -> Result<Received, Rejection> {
    let bound = state.config.serve.db.request_timeout;
    tokio::time::timeout(bound, handled)
        .await
        .unwrap_or_else(|_| {
            crate::http::storage_timed_out("webhook", bound);
            Err(Rejection::Unavailable)
        })
}

/// Body, source (named in the URL, or found from the body), signature, route, commit.
/// A parse error is reported only once it matters: a signature checked against a source
/// named in the URL comes first.
#[tracing::instrument(name = "webhook", skip_all, fields(sender = S::NAME, source_id, job_id))]
async fn handle<S: Sender>(
    state: &AppState,
    path_id: Option<&str>,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Received, Rejection> {
    let raw = body(raw)?;
    let parsed = S::parse(&raw);
    let candidates = match path_id {
        Some(id) => vec![S::named(state, id).await?],
        None => {
            let body = parsed
                .as_ref()
                .map_err(|e| Rejection::Malformed(e.clone()))?;
            S::candidates(&state.store, body).await?
        }
    };
    let req = Request {
        headers,
        raw: &raw,
        now_s: state.clock.now_ms() / 1000,
    };
    let admitted = admit::<S>(candidates, parsed, &req)?;
    match admitted.route {
        Route::Answer(received) => Ok(received),
        Route::Job { kind, dedupe_key } => {
            let (source, stored) = (&admitted.source, &admitted.stored);
            accept(state, source, kind, dedupe_key, stored, trace_id(headers)).await
        }
    }
}

/// A request some candidate source signed: what to store and what to do with it.
pub(crate) struct Admitted<'a> {
    pub(crate) source: Source,
    pub(crate) stored: Cow<'a, [u8]>,
    /// A job's dedupe key is already scoped to `source`.
    pub(crate) route: Route,
}

/// Everything between finding the candidate sources and committing — signature, body,
/// claim, what is stored, route — with no I/O, so the fuzz targets drive it as is.
fn admit<'a, S: Sender>(
    candidates: Vec<Source>,
    parsed: Result<S::Body, String>,
    req: &Request<'a>,
) -> Result<Admitted<'a>, Rejection> {
    let mut refused = None;
    let mut signer = None;
    for source in candidates {
        match verify_any::<S>(&source, req) {
            Ok(()) => {
                signer = Some(source);
                break;
            }
            Err(e) => refused = Some(e),
        }
    }
    let Some(source) = signer else {
        return Err(refused.unwrap_or_else(|| Rejection::UnknownSource(S::UNKNOWN.into())));
    };
    tracing::Span::current().record("source_id", tracing::field::display(source.id));
    let body = parsed.map_err(Rejection::Malformed)?;
    // A tenant's secret signs only for its own team or webhook: naming another tenant's
    // source in the body gets nothing stored.
    if let Some(claimed) = S::claims(&body)
        && claimed != source.external_id
    {
        return Err(Rejection::UnknownSource(format!(
            "the payload is for another {} source than the one in the URL",
            S::SOURCE.as_str()
        )));
    }
    let stored = S::stored(&body, req.raw)?;
    let route = match S::route(body, req)? {
        Route::Job { kind, dedupe_key } => Route::Job {
            kind,
            dedupe_key: scoped_key(&source, &dedupe_key),
        },
        answer => answer,
    };
    Ok(Admitted {
        source,
        stored,
        route,
    })
}

/// Whether `source` signed the request with its signing secret or, during the grace
/// period of a rotation, with the one it replaced.
fn verify_any<S: Sender>(source: &Source, req: &Request<'_>) -> Result<(), Rejection> {
    let refused = match S::verify(source, req) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    match source.previous_secret_at(req.now_s.saturating_mul(1000)) {
        Some(previous) => {
            let mut before = source.clone();
            before.secret = previous.clone();
            S::verify(&before, req).map_err(|_| refused)
        }
        None => Err(refused),
    }
}

/// Longest delivery id kept in the dedupe key as the sender wrote it. The key is indexed,
/// and PostgreSQL refuses an index row over about 2.7 kB (a ClickUp delivery of some
/// hundred history items): a longer id is kept as its SHA-256.
pub(crate) const MAX_DELIVERY_ID: usize = 256;

/// The job's dedupe key. Scoped to the source: one tenant's deliveries can never be
/// taken for another's duplicates (nor reveal their job ids).
fn scoped_key(source: &Source, delivery_id: &str) -> String {
    if delivery_id.len() <= MAX_DELIVERY_ID {
        format!("{}:{delivery_id}", source.id)
    } else {
        format!(
            "{}:sha256:{}",
            source.id,
            sha256_hex(delivery_id.as_bytes())
        )
    }
}

/// The endpoint named by `source`'s URL, up to the commit (`crate::fuzzing`).
pub(crate) fn admit_to<'a>(
    source: Source,
    headers: &'a HeaderMap,
    raw: &'a [u8],
    now_s: i64,
) -> Result<Admitted<'a>, Rejection> {
    let req = Request {
        headers,
        raw,
        now_s,
    };
    match source.kind {
        SourceKind::Slack => admit::<Slack>(vec![source], Slack::parse(raw), &req),
        SourceKind::Clickup => admit::<ClickUp>(vec![source], ClickUp::parse(raw), &req),
        SourceKind::Ingest => admit::<Ingest>(vec![source], Ingest::parse(raw), &req),
        SourceKind::Putio => admit::<Putio>(vec![source], Putio::parse(raw), &req),
    }
}

/// Counts the outcome and shapes the response.
fn answer(
    source: &'static str,
    result: Result<Received, Rejection>,
) -> Result<ApiJson<Received>, ApiError> {
    match result {
        Ok(received) => {
            metrics::counter!(catalog::WEBHOOKS, "source" => source, "outcome" => received.outcome())
                .increment(1);
            Ok(ApiJson(received))
        }
        Err(r) => {
            tracing::info!(source, reason = r.reason(), detail = %r, "webhook rejected");
            let labels = [("source", source), ("reason", r.reason())];
            metrics::counter!(catalog::WEBHOOKS_REJECTED, &labels).increment(1);
            Err(r.into_api())
        }
    }
}

fn body(b: Result<axum::body::Bytes, BytesRejection>) -> Result<axum::body::Bytes, Rejection> {
    b.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Rejection::TooLarge,
        _ => Rejection::Malformed(e.body_text()),
    })
}

/// The request id tags the job and every event it produces; an overlong one (it is the
/// sender's) is left out rather than stored.
fn trace_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= MAX_TRACE_ID)
        .map(|s| s.replace('-', ""))
}

/// Longest `x-request-id` kept as a trace id (a UUID is 36).
const MAX_TRACE_ID: usize = 128;

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Commits the job; answers only once it is durable.
async fn accept(
    state: &AppState,
    source: &Source,
    kind: JobKind,
    dedupe_key: String,
    payload: &[u8],
    trace_id: Option<String>,
) -> Result<Received, Rejection> {
    let payload = String::from_utf8(payload.to_vec())
        .map_err(|_| Rejection::Malformed("the body is not UTF-8".into()))?;
    let suspended = suspended::is_suspended(state, source).await?;
    if !suspended {
        state
            .quotas
            .admit_webhook(source.tenant_id, source.id)
            .await?;
    }
    let job = NewJob {
        tenant_id: source.tenant_id,
        source_id: Some(source.id),
        source: source.kind.as_str().to_owned(),
        kind: kind.as_str().to_owned(),
        dedupe_key,
        payload,
        trace_id,
        max_attempts: state.queue.max_attempts(kind.as_str()),
        // Never due: it is made dead right after the insert (see `suspended`).
        run_at: if suspended { i64::MAX } else { 0 },
    };
    let received = match state.queue.enqueue(job).await? {
        Enqueued::Created(job_id) => Received::Accepted { job_id },
        Enqueued::Duplicate(job_id) => Received::Duplicate { job_id },
    };
    if suspended {
        return suspended::drop_job(state, source, received).await;
    }
    if let Received::Accepted { job_id } | Received::Duplicate { job_id } = &received {
        tracing::Span::current().record("job_id", tracing::field::display(job_id));
        tracing::debug!(outcome = received.outcome(), "webhook stored");
    }
    Ok(received)
}

/// A source named in the URL must exist and be of the endpoint's kind.
async fn source_by_id(state: &AppState, id: &str, kind: SourceKind) -> Result<Source, Rejection> {
    let unknown = || Rejection::UnknownSource(format!("no {} source with this id", kind.as_str()));
    let id: Uuid = id.parse().map_err(|_| unknown())?;
    match state.ctx.source(id).await {
        Ok(s) if s.kind == kind => Ok(s),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}
