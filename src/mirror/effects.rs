//! Every write to Slack or ClickUp goes through [`once`]: the intent is recorded in its
//! own transaction before the provider is called, the result after. An attempt that
//! dies in between (SIGKILL, lost lease) leaves the intent `pending`; the next attempt
//! looks for the write at the provider before making it again. So a post asked for once
//! is made at most once, and — unless a provider cannot be asked — exactly once.

use std::future::Future;

use nexus_proto::TenantId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::providers::ProviderError;
use crate::queue::JobError;
use crate::store::{Begun, Holder, Provider};

/// How long to wait before looking again when another job is making the same write.
const BUSY_RETRY_MS: u64 = 1_000;

/// One write, named by `op_key` (the same key for every attempt that wants it).
pub struct Effect<'a> {
    pub tenant: TenantId,
    pub holder: Holder<'a>,
    pub op_key: &'a str,
}

/// Makes the write `effect` names at most once. `find(since_ms)` asks the provider for a
/// write made for this key since an unfinished attempt began (the database's clock);
/// `make` writes; `made` names what a result made (for recognising its webhook echo).
/// The outer error is the job's (storage, lease, another job busy with the write), the
/// inner the provider's: callers treat them differently.
pub async fn once<T, Find, FindFut, Make, MakeFut>(
    ctx: &Context,
    effect: Effect<'_>,
    find: Find,
    make: Make,
    made: impl Fn(&T) -> (Provider, String),
) -> Result<Result<T, ProviderError>, JobError>
where
    T: Serialize + DeserializeOwned,
    Find: FnOnce(i64) -> FindFut,
    FindFut: Future<Output = Result<Option<T>, ProviderError>>,
    Make: FnOnce() -> MakeFut,
    MakeFut: Future<Output = Result<T, ProviderError>>,
{
    let store = &ctx.store;
    let key = effect.op_key;
    let found = match store
        .begin_effect(key, effect.tenant, effect.holder)
        .await?
    {
        Begun::Done(result) => {
            return serde_json::from_str(&result)
                .map(Ok)
                .map_err(|e| JobError::permanent("corrupt", format!("the result of {key}: {e}")));
        }
        Begun::Busy => {
            return Err(JobError::Later {
                message: format!("another job is making the write {key}"),
                after_ms: BUSY_RETRY_MS,
            });
        }
        Begun::LeaseLost => {
            return Err(JobError::transient(
                "lease lost before writing: the job may run on another worker",
            ));
        }
        Begun::Fresh => None,
        Begun::Unfinished { started_at } => {
            tracing::warn!(
                op_key = key,
                "an earlier attempt began this write and did not record it: looking for it"
            );
            match find(started_at).await {
                Ok(found) => found,
                Err(e @ ProviderError::Transient { .. }) => return Err(e.into()),
                // Not allowed to look (a Slack app without a history scope): writing
                // again risks a duplicate, not writing loses the write for good.
                Err(e) => {
                    tracing::warn!(op_key = key, error = %e, "cannot look for an unfinished write; making it again");
                    None
                }
            }
        }
    };
    let written = match found {
        Some(found) => found,
        None => match make().await {
            Ok(written) => written,
            Err(e) => {
                // A refusal wrote nothing; after a timeout the write may exist: the
                // intent stays for the next attempt to look for.
                if matches!(e, ProviderError::Permanent { .. }) {
                    store.abandon_effect(key, effect.holder).await?;
                }
                return Ok(Err(e));
            }
        },
    };
    let result = serde_json::to_string(&written)
        .map_err(|e| JobError::permanent("unserializable", e.to_string()))?;
    let (provider, external_id) = made(&written);
    store
        .finish_effect(key, effect.tenant, Some((provider, &external_id)), &result)
        .await?;
    Ok(Ok(written))
}
