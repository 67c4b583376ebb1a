//! Shared state for agent-identity: what replicas of one deployment keep in common.
//!
//! A sidecar that runs as several replicas must share users' connections (so that a rotating
//! refresh token is spent once), registered clients (so that a client is registered once per
//! server, not once per replica) and approvals (so that one given at one replica is used once,
//! at any). Each of those is kept as JSON documents in a [`SharedState`]: read with a version,
//! written only if the version is still the one read (check-and-set), and guarded, where work
//! must be done once, by a lease with a time to live.
//!
//! - [`SharedState`]: the trait a backend implements. `identity-vault` implements it on Vault
//!   (or OpenBao) KV v2, `identity-redis` on Redis; [`MemoryState`] here keeps it in one
//!   process.
//! - The crates that keep state build on it: `identity_oauth::SharedTokens`,
//!   `identity_dcr::SharedClients`, `identity_approval::SharedApprovals`. They seal what is
//!   secret before it reaches the backend.
//! - [`testing`] (feature `testing`): the conformance suite every backend passes.
//!
//! ```
//! use identity_state::{MemoryState, SharedState};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), identity_core::Error> {
//! let state = MemoryState::default();
//! let version = state.write_if("clients/a", &serde_json::json!({"id": 1}), None).await?;
//! assert!(version.is_some());
//! // A second writer that also saw no document loses.
//! assert_eq!(state.write_if("clients/a", &serde_json::json!({"id": 2}), None).await?, None);
//! # Ok(()) }
//! ```

mod key;
mod memory;
mod namespaced;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use identity_core::Error;
use serde_json::Value;

pub use key::{ALLOWED_PUNCTUATION, check_document, check_key, check_name};
pub use memory::MemoryState;
pub use namespaced::Namespaced;

/// Versioned JSON documents with check-and-set, and leases, shared by the replicas that use the
/// same backend and namespace.
///
/// Keys are `/`-separated segments of ASCII letters, digits and `-_.:@=+,~` ([`check_key`]);
/// callers encode free text (a user id, an issuer) before putting it in a key. A version is
/// never reused for one key, even after a delete: a writer that read a document which was then
/// deleted and written again does not overwrite the new one.
///
/// A document is a JSON object. Numbers are kept exactly up to 2^53 in magnitude (Vault reads JSON numbers as doubles):
/// larger integers go in documents as strings.
///
/// ```
/// fn takes(_: &dyn identity_state::SharedState) {}
/// takes(&identity_state::MemoryState::default());
/// ```
#[async_trait]
pub trait SharedState: Send + Sync + fmt::Debug + 'static {
    /// The document at `key` and its version; `None` when there is none.
    async fn read(&self, key: &str) -> Result<Option<(Value, u64)>, Error>;

    /// Writes `document` (a JSON object) at `key` if its version is still `expected` (`None`:
    /// there is no document); the new version, or `None` when another writer came first.
    async fn write_if(
        &self,
        key: &str,
        document: &Value,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error>;

    /// Deletes the document at `key`; deleting what is not there is no error.
    async fn delete(&self, key: &str) -> Result<(), Error>;

    /// Every key under `folder` (`""` for all), recursively, sorted.
    async fn list(&self, folder: &str) -> Result<Vec<String>, Error>;

    /// Takes the lease named `key` for `holder` until `ttl` has passed: `true` when taken,
    /// or already held by `holder` (whose time to live then starts again); `false` while
    /// another holder has it. A holder that dies loses the lease when its time is up.
    async fn try_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, Error>;

    /// Gives the lease named `key` back, if `holder` still has it.
    async fn release(&self, key: &str, holder: &str) -> Result<(), Error>;
}
