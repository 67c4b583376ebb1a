//! An in-memory [`CredentialStore`]: credentials held in the process, with migration leases.
//!
//! It is the reference implementation that runs the whole conformance suite, the store of the
//! sidecar's embedded default, and the store to use in tests. It keeps nothing across restarts
//! and shares nothing between replicas; production secrets belong in Vault or AWS.
//!
//! ```
//! use identity_core::{Credential, CredentialKind, CredentialRef, CredentialStore, RequestContext, ResourceKind, Secret};
//! use identity_memory::MemoryCredentialStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryCredentialStore::new();
//! store.insert(
//!     Credential::new("cred-openai", CredentialKind::Fixed, "openai-prod")?
//!         .with_secret(Secret::new("sk-live")),
//! );
//! let ctx = RequestContext::builder()
//!     .user_id("alice").resource_id("docs").resource_kind(ResourceKind::Shared)
//!     .provider("openai").model("gpt-4o").action("read").trace_id("t1")
//!     .build().unwrap();
//! let found = store.find_by_ref(&CredentialRef::new("openai-prod")?, &ctx).await?.unwrap();
//! assert_eq!(found.secret.unwrap().expose_secret(), "sk-live");
//! # Ok::<(), identity_core::Error>(()) }).unwrap();
//! ```

mod config;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use identity_core::{
    Capabilities, ConfigError, Credential, CredentialKind, CredentialRef, CredentialStore,
    CredentialWriter, Error, RequestContext, async_trait, check_lease_arguments,
};

pub use config::{MemoryConfig, SecretEnv};

/// A migration lease: who holds it and until when (monotonic clock, immune to wall-clock jumps).
#[derive(Debug, Clone)]
struct Lease {
    migration_id: String,
    expires: Instant,
}

/// An in-memory credential store; see the [crate documentation](crate).
///
/// Reads take a shared lock and never wait for other reads; a lock is never held across an
/// `.await`. `Debug` lists the refs held, never a secret.
#[derive(Default)]
pub struct MemoryCredentialStore {
    credentials: RwLock<HashMap<CredentialRef, Credential>>,
    leases: Mutex<HashMap<CredentialRef, Lease>>,
}

impl MemoryCredentialStore {
    /// An empty store.
    ///
    /// ```
    /// assert!(identity_memory::MemoryCredentialStore::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `credentials`. Two credentials with one ref are a configuration error that
    /// names both, rather than one silently replacing the other.
    ///
    /// ```
    /// use identity_core::parse_credentials_json;
    /// use identity_memory::MemoryCredentialStore;
    ///
    /// let credentials = parse_credentials_json(
    ///     r#"[{"id":"c1","kind":"fixed","name":"n","scope":"read","status":"active","ref":"r1"}]"#,
    /// )?;
    /// let store = MemoryCredentialStore::from_credentials(credentials)?;
    /// assert_eq!(store.len(), 1);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn from_credentials(
        credentials: impl IntoIterator<Item = Credential>,
    ) -> Result<Self, Error> {
        let mut map: HashMap<CredentialRef, Credential> = HashMap::new();
        for credential in credentials {
            match map.entry(credential.reference.clone()) {
                Entry::Occupied(existing) => {
                    return Err(Error::InvalidConfig(ConfigError::new(
                        format!("credential `{}`", credential.id),
                        Some("ref"),
                        format!(
                            "`{}` is already the ref of credential `{}`",
                            credential.reference,
                            existing.get().id
                        ),
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(credential);
                }
            }
        }
        Ok(Self {
            credentials: RwLock::new(map),
            leases: Mutex::default(),
        })
    }

    /// Creates or replaces the credential in slot `credential.reference`; returns the one replaced.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind};
    /// let store = identity_memory::MemoryCredentialStore::new();
    /// let c = Credential::new("c1", CredentialKind::Fixed, "slot")?;
    /// assert!(store.insert(c.clone()).is_none());
    /// assert!(store.insert(c).is_some());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn insert(&self, credential: Credential) -> Option<Credential> {
        self.write()
            .insert(credential.reference.clone(), credential)
    }

    /// Removes the credential in slot `reference`; returns it.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind, CredentialRef};
    /// let store = identity_memory::MemoryCredentialStore::new();
    /// store.insert(Credential::new("c1", CredentialKind::Fixed, "slot")?);
    /// assert!(store.remove(&CredentialRef::new("slot")?).is_some());
    /// assert!(store.is_empty());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn remove(&self, reference: &CredentialRef) -> Option<Credential> {
        self.write().remove(reference)
    }

    /// Every credential the store holds, without its secret, ordered by ref.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind, Secret};
    /// let store = identity_memory::MemoryCredentialStore::new();
    /// store.insert(Credential::new("c1", CredentialKind::Fixed, "slot")?.with_secret(Secret::new("s")));
    /// let listed = store.credentials_without_secrets();
    /// assert_eq!(listed.len(), 1);
    /// assert!(listed[0].secret.is_none());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn credentials_without_secrets(&self) -> Vec<Credential> {
        let mut listed: Vec<Credential> = self
            .read()
            .values()
            .map(|c| c.clone().without_secret())
            .collect();
        listed.sort_by(|a, b| a.reference.as_str().cmp(b.reference.as_str()));
        listed
    }

    /// How many credentials the store holds.
    ///
    /// ```
    /// assert_eq!(identity_memory::MemoryCredentialStore::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when the store holds no credential.
    ///
    /// ```
    /// assert!(identity_memory::MemoryCredentialStore::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A panic while holding the lock cannot leave the map half-written (every write is a single
    // `insert` or `remove`), so a poisoned lock is safe to keep using.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<CredentialRef, Credential>> {
        self.credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<CredentialRef, Credential>> {
        self.credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn listing(&self, keep: impl Fn(&Credential) -> bool) -> Vec<Credential> {
        let mut listed: Vec<Credential> = self
            .read()
            .values()
            .filter(|c| keep(c))
            .map(|c| c.clone().without_secret())
            .collect();
        listed.sort_by(|a, b| a.reference.cmp(&b.reference));
        listed
    }
}

impl fmt::Debug for MemoryCredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut refs: Vec<String> = self.read().keys().map(ToString::to_string).collect();
        refs.sort();
        f.debug_struct("MemoryCredentialStore")
            .field("refs", &refs)
            .finish_non_exhaustive()
    }
}

const BACKEND: &str = "memory";

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::with_leases()
    }

    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        _context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        Ok(self.read().get(reference).cloned())
    }

    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        Ok(self.listing(|c| c.status.is_usable()))
    }

    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        Ok(self.listing(|c| c.kind == kind))
    }

    async fn reserve(
        &self,
        reference: &CredentialRef,
        migration_id: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        check_lease_arguments(migration_id, ttl)?;
        let now = Instant::now();
        let expires = now.checked_add(ttl).ok_or_else(|| Error::InvalidArgument {
            argument: "lease ttl",
            problem: "is too long".into(),
        })?;
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        match leases.get(reference) {
            Some(lease) if lease.migration_id != migration_id && lease.expires > now => Ok(false),
            _ => {
                leases.insert(
                    reference.clone(),
                    Lease {
                        migration_id: migration_id.to_owned(),
                        expires,
                    },
                );
                Ok(true)
            }
        }
    }

    async fn release(&self, reference: &CredentialRef, migration_id: &str) -> Result<(), Error> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        match leases.get(reference) {
            None => Ok(()),
            Some(lease) if lease.migration_id == migration_id => {
                leases.remove(reference);
                Ok(())
            }
            Some(lease) if lease.expires <= Instant::now() => {
                leases.remove(reference);
                Ok(())
            }
            Some(_) => Err(Error::LeaseHeld {
                reference: reference.to_string(),
            }),
        }
    }
}

#[async_trait]
impl CredentialWriter for MemoryCredentialStore {
    async fn put(&self, credential: Credential) -> Result<(), Error> {
        self.insert(credential);
        Ok(())
    }

    async fn delete(&self, reference: &CredentialRef) -> Result<bool, Error> {
        Ok(self.remove(reference).is_some())
    }
}
