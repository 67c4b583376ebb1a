//! [`ApprovalStore`]: where approvals are kept, with check-and-set so that one approval is
//! used once however many replicas share the store; and [`MemoryApprovals`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use identity_core::{Error, OffsetDateTime};

use crate::record::Approval;

/// An approval and the version it was read at, for [`ApprovalStore::replace`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Versioned {
    /// The approval.
    pub approval: Approval,
    /// Its version in the store.
    pub version: u64,
}

/// Where approvals are kept. Every change is a check-and-set on the version read, so that two
/// replicas cannot both use, or both decide, one approval.
///
/// ```
/// # async fn example(store: &dyn identity_approval::ApprovalStore) -> Result<(), identity_core::Error> {
/// if let Some(held) = store.for_call("digest").await? {
///     println!("{} is {:?}", held.approval.id, held.approval.state);
/// }
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
pub trait ApprovalStore: Send + Sync + fmt::Debug + 'static {
    /// Keeps `approval` as the approval of its call, unless another still stands for that call
    /// at `now` ([`Approval::is_live`]): then that one is returned, and `approval` is not kept.
    async fn create(&self, approval: &Approval, now: OffsetDateTime) -> Result<Versioned, Error>;

    /// The approval `id`.
    async fn get(&self, id: &str) -> Result<Option<Versioned>, Error>;

    /// The latest approval of the call with digest `digest`.
    async fn for_call(&self, digest: &str) -> Result<Option<Versioned>, Error>;

    /// Writes `approval` if it is still at `version`; `false` when another writer came first.
    async fn replace(&self, approval: &Approval, version: u64) -> Result<bool, Error>;

    /// Every approval kept, newest first.
    async fn list(&self) -> Result<Vec<Approval>, Error>;
}

/// Approvals in this process's memory: for one replica. Approvals that lapsed a day ago are
/// forgotten.
///
/// ```
/// let store = identity_approval::MemoryApprovals::default();
/// ```
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    by_id: HashMap<String, (Approval, u64)>,
    by_call: HashMap<String, String>,
}

impl Kept {
    fn forget_old(&mut self, now: OffsetDateTime) {
        let horizon = now - time::Duration::days(1);
        self.by_id
            .retain(|_, (approval, _)| approval.expires_at > horizon);
        let by_id = &self.by_id;
        self.by_call.retain(|_, id| by_id.contains_key(id));
    }
}

#[async_trait::async_trait]
impl ApprovalStore for MemoryApprovals {
    async fn create(&self, approval: &Approval, now: OffsetDateTime) -> Result<Versioned, Error> {
        let mut kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        kept.forget_old(now);
        if let Some((standing, version)) = kept
            .by_call
            .get(&approval.call_digest)
            .and_then(|id| kept.by_id.get(id))
            .filter(|(standing, _)| standing.is_live(now))
        {
            return Ok(Versioned {
                approval: standing.clone(),
                version: *version,
            });
        }
        kept.by_id
            .insert(approval.id.clone(), (approval.clone(), 1));
        kept.by_call
            .insert(approval.call_digest.clone(), approval.id.clone());
        Ok(Versioned {
            approval: approval.clone(),
            version: 1,
        })
    }

    async fn get(&self, id: &str) -> Result<Option<Versioned>, Error> {
        let kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(kept.by_id.get(id).map(|(approval, version)| Versioned {
            approval: approval.clone(),
            version: *version,
        }))
    }

    async fn for_call(&self, digest: &str) -> Result<Option<Versioned>, Error> {
        let kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(kept
            .by_call
            .get(digest)
            .and_then(|id| kept.by_id.get(id))
            .map(|(approval, version)| Versioned {
                approval: approval.clone(),
                version: *version,
            }))
    }

    async fn replace(&self, approval: &Approval, version: u64) -> Result<bool, Error> {
        let mut kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.by_id.get_mut(&approval.id) {
            Some((current, current_version)) if *current_version == version => {
                *current = approval.clone();
                *current_version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list(&self) -> Result<Vec<Approval>, Error> {
        let kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<Approval> = kept.by_id.values().map(|(a, _)| a.clone()).collect();
        all.sort_by_key(|approval| std::cmp::Reverse(approval.created_at));
        Ok(all)
    }
}
