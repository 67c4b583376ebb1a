//! The cache's rules, on the memory store (counted by a wrapper of the test's own) and through
//! the store conformance suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use identity_cache::{CacheConfig, CachedStore};
use identity_core::{
    Capabilities, Credential, CredentialKind, CredentialRef, CredentialStore, CredentialWriter,
    Error, RequestContext, ResourceKind, Secret,
};
use identity_memory::MemoryCredentialStore;

/// The memory store, with its reads counted and able to fail on demand.
#[derive(Debug, Default)]
struct Counted {
    inner: MemoryCredentialStore,
    reads: AtomicUsize,
    down: AtomicBool,
    per_caller: bool,
}

#[async_trait]
impl CredentialStore for Counted {
    fn backend(&self) -> &'static str {
        "counted"
    }
    fn capabilities(&self) -> Capabilities {
        if self.per_caller {
            Capabilities::per_caller()
        } else {
            Capabilities::default()
        }
    }
    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::unavailable("counted", "down"));
        }
        self.inner.find_by_ref(reference, context).await
    }
    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        self.inner.list_active().await
    }
    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        self.inner.list_by_kind(kind).await
    }
}

#[async_trait]
impl CredentialWriter for Counted {
    async fn put(&self, credential: Credential) -> Result<(), Error> {
        self.inner.put(credential).await
    }
    async fn delete(&self, reference: &CredentialRef) -> Result<bool, Error> {
        self.inner.delete(reference).await
    }
}

fn ctx() -> RequestContext {
    RequestContext::builder()
        .user_id("u")
        .resource_id("r")
        .resource_kind(ResourceKind::Shared)
        .provider("p")
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap()
}

fn credential(secret: &str) -> Credential {
    Credential::new("cred-1", CredentialKind::Fixed, "openai")
        .unwrap()
        .with_secret(Secret::new(secret))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_read_for_many_misses_absent_refs_cached_failures_not() {
    let store = Arc::new(CachedStore::new(Counted::default(), CacheConfig::default()).unwrap());
    store.put(credential("sk-1")).await.unwrap();
    let reference = CredentialRef::new("openai").unwrap();
    let reads = (0..16).map(|_| {
        let store = Arc::clone(&store);
        let reference = reference.clone();
        tokio::spawn(async move { store.find_by_ref(&reference, &ctx()).await.unwrap() })
    });
    for read in reads {
        let found = read.await.unwrap().unwrap();
        assert_eq!(found.secret.unwrap().expose_secret(), "sk-1");
    }
    assert_eq!(store.inner().reads.load(Ordering::SeqCst), 1);

    let unknown = CredentialRef::new("nobody").unwrap();
    for _ in 0..5 {
        assert!(store.find_by_ref(&unknown, &ctx()).await.unwrap().is_none());
    }
    assert_eq!(store.inner().reads.load(Ordering::SeqCst), 2);

    // A failure is not kept: the next lookup reaches the backend again.
    store.inner().down.store(true, Ordering::SeqCst);
    let other = CredentialRef::new("other").unwrap();
    assert!(
        store
            .find_by_ref(&other, &ctx())
            .await
            .unwrap_err()
            .is_retryable()
    );
    store.inner().down.store(false, Ordering::SeqCst);
    assert!(store.find_by_ref(&other, &ctx()).await.unwrap().is_none());
    assert_eq!(store.inner().reads.load(Ordering::SeqCst), 4);
    // While the backend is down, what was read is served from the cache.
    store.inner().down.store(true, Ordering::SeqCst);
    assert!(
        store
            .find_by_ref(&reference, &ctx())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn writes_through_the_wrapper_are_seen_at_once_others_after_the_ttl() {
    let store = CachedStore::new(
        Counted::default(),
        CacheConfig::default().ttl(Duration::from_secs(1)),
    )
    .unwrap();
    let reference = CredentialRef::new("openai").unwrap();
    store.put(credential("sk-1")).await.unwrap();
    assert!(
        store
            .find_by_ref(&reference, &ctx())
            .await
            .unwrap()
            .is_some()
    );
    store.put(credential("sk-2")).await.unwrap();
    let found = store
        .find_by_ref(&reference, &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.secret.unwrap().expose_secret(), "sk-2");
    // A change made behind the wrapper's back: the cached read until the TTL, or invalidate.
    store.inner().inner.put(credential("sk-3")).await.unwrap();
    let stale = store
        .find_by_ref(&reference, &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.secret.unwrap().expose_secret(), "sk-2");
    store.invalidate(&reference).await;
    let fresh = store
        .find_by_ref(&reference, &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fresh.secret.unwrap().expose_secret(), "sk-3");
    store.delete(&reference).await.unwrap();
    assert!(
        store
            .find_by_ref(&reference, &ctx())
            .await
            .unwrap()
            .is_none()
    );
    store.inner().inner.put(credential("sk-4")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        store
            .find_by_ref(&reference, &ctx())
            .await
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_store_whose_credentials_differ_per_caller_is_refused() {
    let per_caller = Counted {
        per_caller: true,
        ..Counted::default()
    };
    let err = CachedStore::new(per_caller, CacheConfig::default()).unwrap_err();
    assert!(err.to_string().contains("per caller"), "{err}");
}

#[tokio::test]
async fn the_wrapper_passes_the_store_conformance_suite() {
    for ttl in [Duration::ZERO, Duration::from_secs(30)] {
        let store = CachedStore::new(
            MemoryCredentialStore::new(),
            CacheConfig::default().ttl(ttl),
        )
        .unwrap();
        identity_core::testing::run_conformance(&store, "cached").await;
    }
}
