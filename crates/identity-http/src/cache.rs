//! The token cache every crate that caches tokens uses, and a map of per-key locks.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

/// A cached value and how long the cache keeps it.
struct Entry<V> {
    value: V,
    keep: Duration,
}

struct UntilExpiry;

impl<K, V> Expiry<K, Arc<Entry<V>>> for UntilExpiry {
    fn expire_after_create(&self, _: &K, entry: &Arc<Entry<V>>, _: Instant) -> Option<Duration> {
        Some(entry.keep)
    }
}

/// Tokens by key, each kept until its own expiry minus a skew (30 s by default), so that no
/// token is handed out that expires in flight.
///
/// - **Single flight**: concurrent misses for one key run one fetch; the others wait for it.
/// - **Failures are not cached**: the next call fetches again.
/// - **No token is kept forever**: a token whose server gave no lifetime is kept for the
///   default lifetime (5 minutes).
/// - A token whose lifetime is within the skew is handed to the caller that fetched it (it is
///   still valid) and not kept.
///
/// The key must say whose token it is and everything that changes it (subject digest,
/// audience, resource, scope): the cache cannot know.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// let cache: identity_http::TokenCache<String, u32> = identity_http::TokenCache::new(1_000);
/// let first = cache.get_or_fetch("alice".to_owned(), || async { Ok::<_, String>((1, Some(Duration::from_secs(300)))) }).await?;
/// let again = cache.get_or_fetch("alice".to_owned(), || async { Ok::<_, String>((2, Some(Duration::from_secs(300)))) }).await?;
/// assert_eq!((first, again), (1, 1));
/// # Ok::<(), std::sync::Arc<String>>(()) }).unwrap();
/// ```
pub struct TokenCache<K, V> {
    cache: Cache<K, Arc<Entry<V>>>,
    skew: Duration,
    default_lifetime: Duration,
}

impl<K, V> fmt::Debug for TokenCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.cache.entry_count())
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

impl<K, V> TokenCache<K, V>
where
    K: Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `capacity` tokens, 30 s of skew, 5 minutes for tokens without a
    /// stated lifetime.
    ///
    /// ```
    /// let cache: identity_http::TokenCache<String, String> = identity_http::TokenCache::new(100);
    /// ```
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .support_invalidation_closures()
                .build(),
            skew: Duration::from_secs(30),
            default_lifetime: Duration::from_secs(300),
        }
    }

    /// Tokens are dropped this long before they expire.
    ///
    /// ```
    /// let cache: identity_http::TokenCache<String, String> = identity_http::TokenCache::new(100)
    ///     .skew(std::time::Duration::from_secs(60));
    /// ```
    pub fn skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// How long a token is taken to live when its server did not say.
    ///
    /// ```
    /// let cache: identity_http::TokenCache<String, String> = identity_http::TokenCache::new(100)
    ///     .default_lifetime(std::time::Duration::from_secs(60));
    /// ```
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// The lifetime a token is taken to have: `stated`, or the default.
    ///
    /// ```
    /// let cache: identity_http::TokenCache<String, String> = identity_http::TokenCache::new(100);
    /// assert_eq!(cache.lifetime_of(None).as_secs(), 300);
    /// ```
    pub fn lifetime_of(&self, stated: Option<Duration>) -> Duration {
        stated.unwrap_or(self.default_lifetime)
    }

    /// The cached value of `key`, or the value the future `fetch()` gives (with its lifetime,
    /// `None` when the server did not say), cached until that lifetime less the skew.
    /// Concurrent callers with one key share one fetch; a failure is handed to every waiter and
    /// not cached. `fetch` is called, and its future boxed, only on a miss: a hit neither builds
    /// nor moves it (fetches are large futures, and a hit is the path that must be fast).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache: identity_http::TokenCache<&str, &str> = identity_http::TokenCache::new(10);
    /// let failed = cache.get_or_fetch("k", || async { Err::<(&str, _), _>("down") }).await;
    /// assert!(failed.is_err());
    /// let ok = cache.get_or_fetch("k", || async { Ok::<_, &str>(("t", None)) }).await.unwrap();
    /// assert_eq!(ok, "t");
    /// # });
    /// ```
    pub async fn get_or_fetch<E, F, Fut>(&self, key: K, fetch: F) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Option<Duration>), E>>,
    {
        if let Some(entry) = self.cache.get(&key).await {
            return Ok(entry.value.clone());
        }
        let fetch = Box::pin(fetch());
        let entry = self
            .cache
            .try_get_with(key.clone(), async {
                let (value, lifetime) = fetch.await?;
                let keep = self.lifetime_of(lifetime).saturating_sub(self.skew);
                Ok(Arc::new(Entry { value, keep }))
            })
            .await?;
        if entry.keep.is_zero() {
            // Valid now, but not for long enough to hand to anyone else.
            self.cache.invalidate(&key).await;
        }
        Ok(entry.value.clone())
    }

    /// The cached value of `key`, if any.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache: identity_http::TokenCache<&str, &str> = identity_http::TokenCache::new(10);
    /// assert!(cache.get(&"k").await.is_none());
    /// # });
    /// ```
    pub async fn get(&self, key: &K) -> Option<V> {
        self.cache.get(key).await.map(|entry| entry.value.clone())
    }

    /// Forgets `key`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache: identity_http::TokenCache<&str, &str> = identity_http::TokenCache::new(10);
    /// cache.invalidate(&"k").await;
    /// # });
    /// ```
    pub async fn invalidate(&self, key: &K) {
        self.cache.invalidate(key).await;
    }

    /// Forgets every entry for which `forget` is true.
    ///
    /// ```
    /// let cache: identity_http::TokenCache<String, String> = identity_http::TokenCache::new(10);
    /// cache.invalidate_if(|key, _| key.starts_with("alice/"));
    /// ```
    pub fn invalidate_if(&self, forget: impl Fn(&K, &V) -> bool + Send + Sync + 'static) {
        // Invalidation closures are enabled when the cache is built: this cannot fail.
        let _ = self
            .cache
            .invalidate_entries_if(move |key, entry| forget(key, &entry.value));
    }

    /// Forgets every entry.
    ///
    /// ```
    /// let cache: identity_http::TokenCache<String, String> = identity_http::TokenCache::new(10);
    /// cache.clear();
    /// ```
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// How many entries are kept (approximately: moka counts lazily).
    ///
    /// ```
    /// let cache: identity_http::TokenCache<String, String> = identity_http::TokenCache::new(10);
    /// assert_eq!(cache.entry_count(), 0);
    /// ```
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// One async lock per key, for work that must not run twice at once for one key (a refresh of
/// one user's tokens). Locks are made on demand and forgotten when nobody holds or waits for
/// them, so the map does not grow with every key ever seen.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let locks = identity_http::KeyedLocks::default();
/// let held = locks.lock("alice/github".to_owned()).await;
/// assert!(locks.try_lock("alice/github".to_owned()).is_none());
/// drop(held);
/// assert!(locks.try_lock("alice/github".to_owned()).is_some());
/// # });
/// ```
pub struct KeyedLocks<K> {
    locks: Mutex<HashMap<K, Weak<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            locks: Mutex::new(HashMap::new()),
        }
    }
}

impl<K> fmt::Debug for KeyedLocks<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("KeyedLocks").field("keys", &count).finish()
    }
}

/// A held lock of [`KeyedLocks`]; released when dropped.
#[derive(Debug)]
pub struct KeyedGuard {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl<K: Hash + Eq + Clone> KeyedLocks<K> {
    fn mutex(&self, key: K) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = locks.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        // Forget locks nobody holds any more, now and then (amortised over insertions).
        if locks.len() >= 64 && locks.len().is_power_of_two() {
            locks.retain(|_, weak| weak.strong_count() > 0);
        }
        let fresh = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key, Arc::downgrade(&fresh));
        fresh
    }

    /// Waits for the lock of `key`, then holds it until the guard is dropped. The guard is
    /// `'static`: it can move into a spawned task.
    pub async fn lock(&self, key: K) -> KeyedGuard {
        KeyedGuard {
            _guard: self.mutex(key).lock_owned().await,
        }
    }

    /// The lock of `key` if nobody holds it.
    pub fn try_lock(&self, key: K) -> Option<KeyedGuard> {
        self.mutex(key)
            .try_lock_owned()
            .ok()
            .map(|guard| KeyedGuard { _guard: guard })
    }

    /// How many keys have a lock that someone holds or waits for (and some that nobody does
    /// any more, until they are swept).
    ///
    /// ```
    /// let locks: identity_http::KeyedLocks<String> = identity_http::KeyedLocks::default();
    /// assert_eq!(locks.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no key has a lock.
    ///
    /// ```
    /// assert!(identity_http::KeyedLocks::<String>::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_share_one_fetch_and_failures_are_not_kept() {
        let cache: Arc<TokenCache<String, String>> = Arc::new(TokenCache::new(100));
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let cache = Arc::clone(&cache);
            let fetches = Arc::clone(&fetches);
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("alice".to_owned(), || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, String>(("token".to_owned(), Some(Duration::from_secs(600))))
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), "token");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        let failed = cache
            .get_or_fetch("bob".to_owned(), || async { Err::<(String, _), _>("down") })
            .await;
        assert_eq!(*failed.unwrap_err(), "down");
        assert!(cache.get(&"bob".to_owned()).await.is_none());
    }

    #[tokio::test]
    async fn tokens_within_the_skew_are_used_once_and_not_kept() {
        let cache: TokenCache<&str, u32> = TokenCache::new(10);
        let first = cache
            .get_or_fetch("k", || async {
                Ok::<_, ()>((1, Some(Duration::from_secs(10))))
            })
            .await
            .unwrap();
        let second = cache
            .get_or_fetch("k", || async {
                Ok::<_, ()>((2, Some(Duration::from_secs(10))))
            })
            .await
            .unwrap();
        assert_eq!((first, second), (1, 2));
        // Without a stated lifetime, the default (5 minutes) keeps it.
        let kept = cache
            .get_or_fetch("n", || async { Ok::<_, ()>((3, None)) })
            .await
            .unwrap();
        assert_eq!(kept, 3);
        assert_eq!(cache.get(&"n").await, Some(3));
    }

    #[tokio::test]
    async fn locks_exclude_per_key_and_are_swept() {
        let locks: KeyedLocks<u32> = KeyedLocks::default();
        let held = locks.lock(1).await;
        assert!(locks.try_lock(1).is_none());
        assert!(locks.try_lock(2).is_some());
        drop(held);
        for key in 0..1000 {
            drop(locks.lock(key).await);
        }
        assert!(locks.len() < 1000, "{}", locks.len());
    }
}
