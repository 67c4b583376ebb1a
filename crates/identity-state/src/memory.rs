//! [`MemoryState`]: shared state kept in one process.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use identity_core::Error;
use serde_json::Value;
use tokio::time::Instant;

use crate::key::{check_folder, check_key, in_folder};
use crate::{SharedState, check_document};

/// Shared state in this process's memory: shared by what holds the same `MemoryState`, lost at
/// exit. For one replica, and for tests.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), identity_core::Error> {
/// use identity_state::{MemoryState, SharedState};
/// use std::time::Duration;
///
/// let state = MemoryState::default();
/// assert!(state.try_lease("leases/refresh", "replica-1", Duration::from_secs(30)).await?);
/// assert!(!state.try_lease("leases/refresh", "replica-2", Duration::from_secs(30)).await?);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct MemoryState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    documents: BTreeMap<String, (Value, u64)>,
    leases: HashMap<String, (String, Instant)>,
    /// The last version given out: versions are never reused, even after a delete.
    last_version: u64,
}

impl fmt::Debug for MemoryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("MemoryState")
            .field("documents", &inner.documents.len())
            .field("leases", &inner.leases.len())
            .finish()
    }
}

impl MemoryState {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SharedState for MemoryState {
    async fn read(&self, key: &str) -> Result<Option<(Value, u64)>, Error> {
        check_key(key)?;
        Ok(self.inner().documents.get(key).cloned())
    }

    async fn write_if(
        &self,
        key: &str,
        document: &Value,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        check_key(key)?;
        check_document(document)?;
        let mut inner = self.inner();
        if inner.documents.get(key).map(|(_, version)| *version) != expected {
            return Ok(None);
        }
        inner.last_version += 1;
        let version = inner.last_version;
        inner
            .documents
            .insert(key.to_owned(), (document.clone(), version));
        Ok(Some(version))
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        self.inner().documents.remove(key);
        Ok(())
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, Error> {
        let folder = check_folder(folder)?;
        Ok(self
            .inner()
            .documents
            .keys()
            .filter(|key| in_folder(key, folder))
            .cloned()
            .collect())
    }

    async fn try_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, Error> {
        check_key(key)?;
        let mut inner = self.inner();
        let now = Instant::now();
        if let Some((other, until)) = inner.leases.get(key)
            && other != holder
            && *until > now
        {
            return Ok(false);
        }
        // Leases lapsed long ago are forgotten as new ones are taken.
        if inner.leases.len() >= 1024 {
            inner.leases.retain(|_, (_, until)| *until > now);
        }
        inner
            .leases
            .insert(key.to_owned(), (holder.to_owned(), now + ttl));
        Ok(true)
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), Error> {
        check_key(key)?;
        let mut inner = self.inner();
        if inner.leases.get(key).is_some_and(|(h, _)| h == holder) {
            inner.leases.remove(key);
        }
        Ok(())
    }
}
