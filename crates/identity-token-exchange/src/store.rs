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
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use url::Url;

use crate::config::{Endpoint, ExchangeConfig, check_endpoint};
use crate::key::CacheKey;
use crate::protocol::{BACKEND, ExchangeError, ExchangedToken, TokenRequest, read_token_response};

/// The largest answer read from an authorization server; a larger one is refused.
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

/// A configured slot, and its token endpoint once discovered.
struct Slot {
    config: ExchangeConfig,
    endpoint: OnceCell<Url>,
}

/// A [`CredentialStore`] of exchanged tokens (RFC 8693): for each configured slot, the caller's
/// token ([`RequestContext::subject_token`], or the slot's subject source when the request has
/// none) is exchanged at the authorization server for a token of that slot's audience, resource
/// and scope.
///
/// - **Per subject.** The cache key is the slot plus a SHA-256 digest of the subject token plus
///   everything that changes the token ([`CacheKey`]): one user's token is never another's.
/// - **One call for many.** Concurrent misses for one key make one exchange; the others wait for
///   it. A failure is never cached.
/// - **Never stale.** An entry is kept until the token's expiry minus the skew (30 s by default);
///   the credential carries its expiry, which the router checks again.
/// - **No subject token, no call.** A request without one is refused with
///   [`Error::Unauthenticated`].
/// - **Bounded retries.** A 5xx, a 429 or a failed connection is retried (3 attempts by default)
///   with jittered backoff, honouring `Retry-After` up to 10 s. Redirects are not followed; an
///   answer over 256 KiB is refused.
/// - **Discovery.** A slot configured with an issuer finds its token endpoint in the issuer's
///   metadata (RFC 8414, then OpenID discovery) once; the metadata's `issuer` must be the one
///   asked for.
pub struct TokenExchangeStore {
    slots: HashMap<CredentialRef, Arc<Slot>>,
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
        // Closures are enabled on the cache when it is built, so this cannot fail.
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

    /// The slot's token endpoint: configured, or discovered once from its issuer (a failed
    /// discovery is tried again next time).
    async fn endpoint(&self, slot: &Slot) -> Result<Url, ExchangeError> {
        match &slot.config.endpoint {
            Endpoint::Token(url) => Ok(url.clone()),
            Endpoint::Issuer(issuer, written) => slot
                .endpoint
                .get_or_try_init(|| self.discover(issuer, written, slot.config.allow_http_loopback))
                .await
                .cloned(),
        }
    }

    /// Reads the issuer's metadata: RFC 8414 first (the issuer's path, if any, after the
    /// well-known segment), then OpenID discovery. The metadata's `issuer` must be the one asked
    /// for, character by character, and its token endpoint pass the checks a configured one does.
    async fn discover(
        &self,
        issuer: &Url,
        written: &str,
        allow_http_loopback: bool,
    ) -> Result<Url, ExchangeError> {
        let invalid = |problem: &str| ExchangeError::InvalidResponse {
            status: 200,
            problem: problem.to_owned(),
        };
        let mut oauth = issuer.clone();
        let path = issuer.path().trim_end_matches('/').to_owned();
        oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        let openid = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            written.trim_end_matches('/')
        ))
        .map_err(|_| invalid("the issuer gives no discovery address"))?;
        let mut failure = None;
        for candidate in [oauth, openid] {
            match self.metadata(candidate).await {
                Ok(Some(metadata)) => {
                    if metadata.get("issuer").and_then(Value::as_str) != Some(written) {
                        return Err(invalid(
                            "the metadata names another issuer than the one asked for",
                        ));
                    }
                    let endpoint = metadata
                        .get("token_endpoint")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid("the metadata has no `token_endpoint`"))?;
                    return check_endpoint(endpoint, allow_http_loopback).map_err(|problem| {
                        invalid(&format!("the metadata's `token_endpoint` {problem}"))
                    });
                }
                Ok(None) => {}
                Err(err) => failure = Some(err),
            }
        }
        Err(failure.unwrap_or(ExchangeError::InvalidResponse {
            status: 404,
            problem: "the issuer publishes no metadata".into(),
        }))
    }

    /// One metadata document, or `None` when the server has none at this address (404).
    async fn metadata(&self, url: Url) -> Result<Option<Map<String, Value>>, ExchangeError> {
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        let body = read_capped(response, status).await?;
        if status != 200 {
            return Err(ExchangeError::InvalidResponse {
                status,
                problem: format!("the metadata answered {status}"),
            });
        }
        match serde_json::from_slice(&body) {
            Ok(Value::Object(metadata)) => Ok(Some(metadata)),
            _ => Err(ExchangeError::InvalidResponse {
                status,
                problem: "metadata that is not a JSON object".into(),
            }),
        }
    }

    async fn exchange(
        &self,
        config: &ExchangeConfig,
        endpoint: &Url,
        subject: &Secret,
        actor: Option<&Secret>,
    ) -> Result<ExchangedToken, ExchangeError> {
        let mut attempt = 1;
        loop {
            match self.exchange_once(config, endpoint, subject, actor).await {
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
        endpoint: &Url,
        subject: &Secret,
        actor: Option<&Secret>,
    ) -> Result<ExchangedToken, ExchangeError> {
        let request = TokenRequest::new(endpoint, config, subject, actor);
        let mut post = self
            .http
            .post(request.url().clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(request.body().expose_secret().to_owned());
        if let Some(authorization) = request.authorization() {
            post = post.header("authorization", authorization.expose_secret());
        }
        let response = post.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_capped(response, status).await?;
        read_token_response(config, status, retry_after.as_deref(), &body)
    }
}

fn transport(err: reqwest::Error) -> ExchangeError {
    ExchangeError::Transport {
        detail: err.without_url().to_string(),
    }
}

/// A response body of at most 256 KiB.
async fn read_capped(
    mut response: reqwest::Response,
    status: u16,
) -> Result<Vec<u8>, ExchangeError> {
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
    Ok(body)
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

    /// The longest one call to the authorization server may take (10 s by default).
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
        let mut slots = HashMap::new();
        let mut order = Vec::new();
        for config in self.configs {
            let reference = config.reference.clone();
            let slot = Arc::new(Slot {
                config,
                endpoint: OnceCell::new(),
            });
            if slots.insert(reference.clone(), slot).is_some() {
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
            slots,
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
        let Some(slot) = self.slots.get(reference) else {
            return Ok(None);
        };
        let config = &slot.config;
        // The request's own token first; the slot's source only when the request carries none.
        let subject = match (&context.subject_token, &config.subject_source) {
            (Some(token), _) => Some(token.secret().clone()),
            (None, Some(source)) => source.token(context).await?,
            (None, None) => None,
        };
        let Some(subject) = subject else {
            return Err(Error::Unauthenticated {
                backend: BACKEND,
                detail: "the request carries no token of the caller's to exchange".into(),
            });
        };
        let actor = match &config.actor_source {
            Some(source) => source.token(context).await?,
            None => None,
        };
        let key = CacheKey::new(config, &subject, actor.as_ref());
        let cached = self
            .cache
            .try_get_with(key, async {
                let endpoint = self.endpoint(slot).await?;
                let token = self
                    .exchange(config, &endpoint, &subject, actor.as_ref())
                    .await?;
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
        Ok(self.listing(|c| c.status.is_usable()))
    }

    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        Ok(self.listing(|c| c.kind == kind))
    }
}

impl TokenExchangeStore {
    fn listing(&self, keep: impl Fn(&Credential) -> bool) -> Vec<Credential> {
        self.order
            .iter()
            .filter_map(|r| self.slots.get(r))
            .map(|slot| slot.config.credential())
            .filter(|c| keep(c))
            .collect()
    }
}
