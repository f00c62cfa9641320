//! Operator authentication: `Authorization: Bearer <operator key>` as an extractor.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use nexus_proto::TenantId;

use super::secrets::hash_operator_key;
use crate::cache::TtlCache;
use crate::http::ApiError;
use crate::store::{OperatorKey, Scope, Store, StoreError};

/// Operator keys by hash, read on every operator API request.
pub struct OperatorKeys {
    store: Store,
    cache: TtlCache<String, OperatorKey>,
}

impl OperatorKeys {
    pub fn new(store: Store, cache_ttl: Duration) -> OperatorKeys {
        OperatorKeys {
            store,
            cache: TtlCache::new(cache_ttl),
        }
    }

    /// A key was revoked through this node: no cached key is trusted any more.
    pub fn forget_all(&self) {
        self.cache.clear();
    }

    pub(crate) async fn find(&self, key: &str) -> Result<Option<OperatorKey>, StoreError> {
        let hash = hash_operator_key(key);
        let load = self.store.operator_key_by_hash(&hash);
        self.cache.get_or_load(&hash, load).await
    }
}

/// An authenticated operator. Handlers call [`Operator::require`] with the scope the
/// action needs and [`Operator::tenant`] for every tenant they touch.
#[derive(Debug, Clone)]
pub struct Operator(pub OperatorKey);

impl Operator {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this key lacks the '{}' scope",
                scope.as_str()
            )))
        }
    }

    /// Refuses a tenant-bound key outside its tenant with 404: the tenant's existence
    /// is none of its business.
    pub fn tenant(&self, tenant: TenantId) -> Result<(), ApiError> {
        match self.0.tenant_id {
            Some(own) if own != tenant => Err(ApiError::not_found("tenant")),
            _ => Ok(()),
        }
    }
}

impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    Arc<OperatorKeys>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("an operator key is required (Authorization: Bearer …)")
            })?;
        let found = Arc::<OperatorKeys>::from_ref(state).find(key).await?;
        found
            .map(Operator)
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked operator key"))
    }
}
