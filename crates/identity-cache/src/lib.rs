//! A read cache any agent-identity credential store can take: [`CachedStore`].
//!
//! A store reads its backend (Vault, AWS Secrets Manager) on every lookup; wrapped in a
//! [`CachedStore`], a lookup of a ref read in the last [`CacheConfig::ttl`] is answered from
//! memory. The cache is one wrapper, tested once, rather than a copy inside each backend:
//!
//! - concurrent misses on one ref make one read of the backend (single flight);
//! - absent refs are cached too, so a flood of lookups of an unknown ref does not reach the
//!   backend;
//! - failures are never cached: the next lookup reaches the backend again;
//! - a write through the wrapper ([`CredentialWriter`]) invalidates its ref; a write made
//!   elsewhere is seen after the TTL, or at once after [`CachedStore::invalidate`];
//! - when the backend is down, cached entries are served until their TTL, never after;
//! - listings, counts, health and leases pass through uncached.
//!
//! A store whose answer depends on the caller ([`Capabilities::per_caller`]: token exchange,
//! users' own OAuth tokens) is refused: a cache keyed by ref would hand one caller's credential
//! to the next. Those stores cache per caller themselves.
//!
//! What this crate does not do: share a cache between replicas (each keeps its own), or cache
//! listings.
//!
//! ```
//! use std::time::Duration;
//! use identity_cache::{CacheConfig, CachedStore};
//! use identity_core::{Credential, CredentialKind, CredentialStore, CredentialWriter, Secret};
//! use identity_memory::MemoryCredentialStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = CachedStore::new(MemoryCredentialStore::new(), CacheConfig::default().ttl(Duration::from_secs(30)))?;
//! store.put(Credential::new("cred-1", CredentialKind::Fixed, "openai")?.with_secret(Secret::new("sk"))).await?;
//! let reference = identity_core::CredentialRef::new("openai")?;
//! let ctx = identity_core::RequestContext::builder().user_id("u").resource_id("r")
//!     .resource_kind(identity_core::ResourceKind::Shared).provider("p").model("m").action("read")
//!     .trace_id("t").build()?;
//! assert!(store.find_by_ref(&reference, &ctx).await?.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use identity_core::{
    Capabilities, ConfigError, Credential, CredentialKind, CredentialRef, CredentialStore,
    CredentialWriter, Error, RequestContext, Secret,
};
use moka::future::Cache;
use serde::Deserialize;

/// How a [`CachedStore`] caches: for how long, and how many refs at most. Deserialisable, so that
/// a configuration file maps onto it (`ttl_secs`, `capacity`).
///
/// ```
/// let config: identity_cache::CacheConfig = serde_json::from_str(r#"{"ttl_secs": 10}"#).unwrap();
/// assert_eq!(config.ttl_duration().as_secs(), 10);
/// assert_eq!(config.capacity, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// How long a read stays cached, in seconds (30); zero turns the cache off.
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs: u64,
    /// How many refs are kept at most (10,000).
    #[serde(default = "default_capacity")]
    pub capacity: u64,
}

fn default_ttl_secs() -> u64 {
    30
}

fn default_capacity() -> u64 {
    10_000
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl_secs: default_ttl_secs(),
            capacity: default_capacity(),
        }
    }
}

impl CacheConfig {
    /// The same configuration with `ttl` (whole seconds; zero turns the cache off).
    ///
    /// ```
    /// let config = identity_cache::CacheConfig::default().ttl(std::time::Duration::from_secs(5));
    /// assert_eq!(config.ttl_secs, 5);
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl_secs = ttl.as_secs();
        self
    }

    /// The same configuration with `capacity`.
    ///
    /// ```
    /// let config = identity_cache::CacheConfig::default().capacity(100);
    /// assert_eq!(config.capacity, 100);
    /// ```
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The TTL as a duration.
    ///
    /// ```
    /// assert_eq!(identity_cache::CacheConfig::default().ttl_duration().as_secs(), 30);
    /// ```
    pub fn ttl_duration(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }
}

/// A store whose reads go through a cache. See the crate documentation for the rules.
///
/// ```
/// # use identity_cache::{CacheConfig, CachedStore};
/// let store = CachedStore::new(identity_memory::MemoryCredentialStore::new(), CacheConfig::default())?;
/// let inner = store.into_inner();
/// # Ok::<(), identity_core::Error>(())
/// ```
pub struct CachedStore<S> {
    inner: S,
    cache: Option<Cache<CredentialRef, Option<Credential>>>,
    config: CacheConfig,
}

impl<S: fmt::Debug> fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("cached", &self.cache.as_ref().map_or(0, Cache::entry_count))
            .finish()
    }
}

impl<S: CredentialStore> CachedStore<S> {
    /// `inner`, its reads cached by `config`. A store whose answers depend on the caller is
    /// refused.
    ///
    /// ```
    /// # use identity_cache::{CacheConfig, CachedStore};
    /// let off = CachedStore::new(identity_memory::MemoryCredentialStore::new(), CacheConfig::default().ttl(std::time::Duration::ZERO))?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(inner: S, config: CacheConfig) -> Result<Self, Error> {
        if inner.capabilities().per_caller {
            return Err(ConfigError::new(
                format!("{} store", inner.backend()),
                Some("cache"),
                "cannot be cached by ref: its credentials differ per caller",
            )
            .into());
        }
        let cache = (config.ttl_secs > 0).then(|| {
            Cache::builder()
                .max_capacity(config.capacity)
                .time_to_live(config.ttl_duration())
                .build()
        });
        Ok(Self {
            inner,
            cache,
            config,
        })
    }

    /// The wrapped store.
    ///
    /// ```
    /// # use identity_cache::{CacheConfig, CachedStore};
    /// let store = CachedStore::new(identity_memory::MemoryCredentialStore::new(), CacheConfig::default())?;
    /// assert_eq!(identity_core::CredentialStore::backend(store.inner()), "memory");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped store, without the cache.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Drops the cached read of `reference`, so that the next read reaches the backend (after a
    /// change made elsewhere).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # use identity_cache::{CacheConfig, CachedStore};
    /// let store = CachedStore::new(identity_memory::MemoryCredentialStore::new(), CacheConfig::default())?;
    /// store.invalidate(&identity_core::CredentialRef::new("openai")?).await;
    /// # Ok::<(), identity_core::Error>(()) }).unwrap();
    /// ```
    pub async fn invalidate(&self, reference: &CredentialRef) {
        if let Some(cache) = &self.cache {
            cache.invalidate(reference).await;
        }
    }

    /// Drops every cached read.
    ///
    /// ```
    /// # use identity_cache::{CacheConfig, CachedStore};
    /// let store = CachedStore::new(identity_memory::MemoryCredentialStore::new(), CacheConfig::default())?;
    /// store.invalidate_all();
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn invalidate_all(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: CredentialStore> CredentialStore for CachedStore<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn health(&self) -> Result<(), Error> {
        self.inner.health().await
    }

    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        match &self.cache {
            Some(cache) => cache
                .try_get_with_by_ref(reference, self.inner.find_by_ref(reference, context))
                .await
                .map_err(|err: Arc<Error>| err.duplicate()),
            None => self.inner.find_by_ref(reference, context).await,
        }
    }

    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        self.inner.list_active().await
    }

    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        self.inner.list_by_kind(kind).await
    }

    async fn count(&self) -> Result<usize, Error> {
        self.inner.count().await
    }

    async fn reserve(
        &self,
        reference: &CredentialRef,
        migration_id: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.inner.reserve(reference, migration_id, ttl).await
    }

    async fn release(&self, reference: &CredentialRef, migration_id: &str) -> Result<(), Error> {
        self.inner.release(reference, migration_id).await
    }

    /// Forgets the cached entry too: a secret refused by its service may have been rotated in
    /// the backend since it was read.
    async fn forget_refused(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
        secret: &Secret,
    ) -> Result<(), Error> {
        self.invalidate(reference).await;
        self.inner.forget_refused(reference, context, secret).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: CredentialWriter> CredentialWriter for CachedStore<S> {
    async fn put(&self, credential: Credential) -> Result<(), Error> {
        let reference = credential.reference.clone();
        let outcome = self.inner.put(credential).await;
        // Invalidated whatever the outcome: a failed write may have reached the backend.
        self.invalidate(&reference).await;
        outcome
    }

    async fn delete(&self, reference: &CredentialRef) -> Result<bool, Error> {
        let outcome = self.inner.delete(reference).await;
        self.invalidate(reference).await;
        outcome
    }
}
