//! The credential store that exchanges the caller's token for each configured slot.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use identity_core::{
    ConfigError, Credential, CredentialKind, CredentialRef, CredentialStore, Error, OffsetDateTime,
    RequestContext, Secret,
};
use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::config::ExchangeConfig;
use crate::key::CacheKey;
use crate::protocol::{BACKEND, ExchangeError, ExchangedToken, TokenRequest, read_token_response};

/// The largest token endpoint answer read; a larger one is a protocol violation.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// An exchanged token as cached: the token, until when it lives, and whose it is.
struct Cached {
    token: Secret,
    expires_at: OffsetDateTime,
    /// How long the cache may keep it: its lifetime minus the skew.
    keep: Duration,
    reference: CredentialRef,
    subject_digest: [u8; 32],
}

/// Entries live until their token's expiry minus the skew, each its own.
struct UntilExpiry;

impl Expiry<CacheKey, Arc<Cached>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &CacheKey,
        value: &Arc<Cached>,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.keep)
    }
}

/// A [`CredentialStore`] of exchanged tokens (RFC 8693): for each configured slot, the caller's
/// token ([`RequestContext::subject_token`]) is exchanged at the authorization server for a
/// token of that slot's audience, resource and scope.
///
/// - **Per subject.** The cache key is the slot plus a SHA-256 digest of the caller's token plus
///   everything that changes the token ([`CacheKey`]): one user's token is never another's.
/// - **One call for many.** Concurrent misses for one key make one exchange; the others wait for
///   it. A failure is never cached.
/// - **Never stale.** An entry is kept until the token's expiry minus the skew (30 s by default);
///   the credential carries its expiry, which the router checks again.
/// - **No caller token, no call.** A request without one is refused with
///   [`Error::Unauthenticated`].
/// - **Bounded retries.** A 5xx, a 429 or a failed connection is retried (3 attempts by default)
///   with jittered backoff, honouring `Retry-After` up to 10 s. Redirects are not followed; an
///   answer over 256 KiB is refused.
pub struct TokenExchangeStore {
    configs: HashMap<CredentialRef, Arc<ExchangeConfig>>,
    order: Vec<CredentialRef>,
    http: reqwest::Client,
    cache: Cache<CacheKey, Arc<Cached>>,
    skew: Duration,
    attempts: u32,
    backoff: Duration,
}

impl fmt::Debug for TokenExchangeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchangeStore")
            .field("refs", &self.order)
            .field("cached", &self.cache.entry_count())
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenExchangeStore`]; see [`TokenExchangeStore::builder`].
#[derive(Debug)]
pub struct TokenExchangeStoreBuilder {
    configs: Vec<ExchangeConfig>,
    skew: Duration,
    timeout: Duration,
    connect_timeout: Duration,
    attempts: u32,
    backoff: Duration,
    capacity: u64,
}

impl TokenExchangeStore {
    /// A builder with no slot, a 30 s skew, a 10 s request timeout (3 s to connect), 3 attempts
    /// and room for 100,000 cached tokens.
    ///
    /// ```
    /// use identity_token_exchange::{ClientAuth, ExchangeConfig, TokenExchangeStore};
    /// let store = TokenExchangeStore::builder()
    ///     .config(ExchangeConfig::builder("crm", "agent").token_endpoint("https://a.example/t")
    ///         .client_auth(ClientAuth::None).audience("https://crm.example.com").build()?)
    ///     .build()?;
    /// # Ok::<(), identity_core::ConfigError>(())
    /// ```
    pub fn builder() -> TokenExchangeStoreBuilder {
        TokenExchangeStoreBuilder {
            configs: Vec::new(),
            skew: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            attempts: 3,
            backoff: Duration::from_millis(200),
            capacity: 100_000,
        }
    }

    /// Forgets every cached token of slot `reference` (after a 401 from its service, say).
    pub fn invalidate(&self, reference: &CredentialRef) {
        let reference = reference.clone();
        // Closures are enabled on the cache when it is built.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, cached| cached.reference == reference);
    }

    /// Forgets every cached token exchanged for `subject` (at the user's logout, say).
    pub fn invalidate_subject(&self, subject: &Secret) {
        let digest: [u8; 32] = Sha256::digest(subject.expose_secret().as_bytes()).into();
        let _ = self
            .cache
            .invalidate_entries_if(move |_, cached| cached.subject_digest == digest);
    }

    /// Forgets every cached token.
    pub fn flush(&self) {
        self.cache.invalidate_all();
    }

    async fn exchange(
        &self,
        config: &ExchangeConfig,
        subject: &Secret,
    ) -> Result<ExchangedToken, ExchangeError> {
        let mut attempt = 1;
        loop {
            match self.exchange_once(config, subject).await {
                Err(err) if err.is_retryable() && attempt < self.attempts => {
                    let server_delay = match &err {
                        ExchangeError::Retryable { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let exponential = self.backoff.saturating_mul(1 << (attempt - 1).min(8));
                    let jitter =
                        Duration::from_millis(fastrand::u64(0..=self.backoff.as_millis() as u64));
                    let delay = server_delay
                        .unwrap_or(exponential + jitter)
                        .min(Duration::from_secs(10));
                    tracing::debug!(target: "agent_identity::token_exchange", attempt, ?delay, error = %err, "retrying the exchange");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn exchange_once(
        &self,
        config: &ExchangeConfig,
        subject: &Secret,
    ) -> Result<ExchangedToken, ExchangeError> {
        let request = TokenRequest::new(config, subject, None);
        let mut post = self
            .http
            .post(request.url().clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(request.body().expose_secret().to_owned());
        if let Some(authorization) = request.authorization() {
            post = post.header("authorization", authorization.expose_secret());
        }
        let transport = |err: reqwest::Error| ExchangeError::Transport {
            detail: err.without_url().to_string(),
        };
        let mut response = post.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ExchangeError::InvalidResponse {
                    status,
                    problem: "an answer larger than 256 KiB".into(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        read_token_response(config, status, retry_after.as_deref(), &body)
    }
}

impl TokenExchangeStoreBuilder {
    /// Adds a slot.
    pub fn config(mut self, config: ExchangeConfig) -> Self {
        self.configs.push(config);
        self
    }

    /// Tokens are dropped from the cache this long before they expire (30 s by default).
    pub fn skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// The longest one call to the token endpoint may take (10 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest connecting may take (3 s by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times one exchange is tried at most (3 by default; 1 turns retries off).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The first retry's base delay, doubled at each retry, plus up to as much jitter (200 ms).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The most tokens kept (100,000 by default).
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Checks the slots (one configuration per ref) and builds the store.
    pub fn build(self) -> Result<TokenExchangeStore, ConfigError> {
        if self.attempts == 0 {
            return Err(ConfigError::new(
                "token exchange store",
                Some("attempts"),
                "is zero",
            ));
        }
        let mut configs = HashMap::new();
        let mut order = Vec::new();
        for config in self.configs {
            let reference = config.reference.clone();
            if configs
                .insert(reference.clone(), Arc::new(config))
                .is_some()
            {
                return Err(ConfigError::new(
                    format!("token exchange `{reference}`"),
                    Some("ref"),
                    "is configured twice",
                ));
            }
            order.push(reference);
        }
        // A process-wide TLS provider is needed for HTTPS; install ring unless the application
        // has chosen one.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|err| {
                ConfigError::new(
                    "token exchange store",
                    None,
                    format!("cannot build the HTTP client: {err}"),
                )
            })?;
        let cache = Cache::builder()
            .max_capacity(self.capacity)
            .expire_after(UntilExpiry)
            .support_invalidation_closures()
            .build();
        Ok(TokenExchangeStore {
            configs,
            order,
            http,
            cache,
            skew: self.skew,
            attempts: self.attempts,
            backoff: self.backoff,
        })
    }
}

#[async_trait]
impl CredentialStore for TokenExchangeStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        let Some(config) = self.configs.get(reference) else {
            return Ok(None);
        };
        let Some(subject) = &context.subject_token else {
            return Err(Error::Unauthenticated {
                backend: BACKEND,
                detail: "the request carries no token of the caller's to exchange".into(),
            });
        };
        let subject = subject.secret();
        let key = CacheKey::new(config, subject, None);
        let cached = self
            .cache
            .try_get_with(key, async {
                let token = self.exchange(config, subject).await?;
                let now = OffsetDateTime::now_utc();
                let lifetime =
                    time::Duration::try_from(token.lifetime).unwrap_or(time::Duration::MAX);
                Ok::<_, ExchangeError>(Arc::new(Cached {
                    keep: token.lifetime.saturating_sub(self.skew),
                    expires_at: now.saturating_add(lifetime),
                    token: token.access_token,
                    reference: reference.clone(),
                    subject_digest: Sha256::digest(subject.expose_secret().as_bytes()).into(),
                }))
            })
            .await
            .map_err(|err: Arc<ExchangeError>| Error::from((*err).clone()))?;
        let mut credential = config.credential().with_secret(cached.token.clone());
        credential.expires_at = Some(cached.expires_at);
        Ok(Some(credential))
    }

    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        Ok(self
            .order
            .iter()
            .filter_map(|r| self.configs.get(r))
            .map(|c| c.credential())
            .filter(|c| c.status.is_usable())
            .collect())
    }

    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        Ok(self
            .order
            .iter()
            .filter_map(|r| self.configs.get(r))
            .map(|c| c.credential())
            .filter(|c| c.kind == kind)
            .collect())
    }
}
