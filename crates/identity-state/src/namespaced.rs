//! [`Namespaced`]: a part of a shared state, under a folder of its own.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use identity_core::Error;
use serde_json::Value;

use crate::SharedState;
use crate::key::check_key;

/// The part of `state` under the folder `namespace`: its keys, listings and leases are those
/// of `state` with `namespace/` before them. Two users of one state (two stores of one process
/// sharing its memory, say) keep apart this way.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), identity_core::Error> {
/// use std::sync::Arc;
/// use identity_state::{MemoryState, Namespaced, SharedState};
///
/// let memory: Arc<dyn SharedState> = Arc::new(MemoryState::default());
/// let crm = Namespaced::new(memory.clone(), "crm")?;
/// crm.write_if("clients/a", &serde_json::json!({}), None).await?;
/// assert_eq!(crm.list("").await?, ["clients/a"]);
/// assert_eq!(memory.list("").await?, ["crm/clients/a"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Namespaced {
    state: Arc<dyn SharedState>,
    namespace: String,
}

impl Namespaced {
    /// The part of `state` under `namespace` (a key: see [`check_key`]).
    ///
    /// ```
    /// let memory = std::sync::Arc::new(identity_state::MemoryState::default());
    /// assert!(identity_state::Namespaced::new(memory, "../x").is_err());
    /// ```
    pub fn new(state: Arc<dyn SharedState>, namespace: &str) -> Result<Self, Error> {
        check_key(namespace)?;
        Ok(Self {
            state,
            namespace: namespace.to_owned(),
        })
    }

    fn key(&self, key: &str) -> Result<String, Error> {
        // The inner key is checked on its own, so that `..` cannot climb out of the namespace.
        check_key(key)?;
        Ok(format!("{}/{key}", self.namespace))
    }
}

#[async_trait]
impl SharedState for Namespaced {
    async fn read(&self, key: &str) -> Result<Option<(Value, u64)>, Error> {
        self.state.read(&self.key(key)?).await
    }

    async fn write_if(
        &self,
        key: &str,
        document: &Value,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        self.state
            .write_if(&self.key(key)?, document, expected)
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.state.delete(&self.key(key)?).await
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, Error> {
        let folder = folder.trim_matches('/');
        let inner = if folder.is_empty() {
            self.namespace.clone()
        } else {
            self.key(folder)?
        };
        let strip = format!("{}/", self.namespace);
        Ok(self
            .state
            .list(&inner)
            .await?
            .into_iter()
            .filter_map(|key| key.strip_prefix(&strip).map(str::to_owned))
            .collect())
    }

    async fn try_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, Error> {
        self.state.try_lease(&self.key(key)?, holder, ttl).await
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), Error> {
        self.state.release(&self.key(key)?, holder).await
    }
}
