//! The credential store that exchanges the caller's token for each configured slot.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use identity_core::{
    ConfigError, Credential, CredentialKind, CredentialRef, CredentialStore, Error, OffsetDateTime,
    RequestContext, Secret,
};
use identity_http::{HttpClient, OAuthError, OutboundPolicy, Retry, TokenCache};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use url::Url;

use crate::config::{Endpoint, ExchangeConfig, check_endpoint};
use crate::key::CacheKey;
use crate::protocol::{BACKEND, ExchangedToken, TokenRequest, read_token_response};

/// The largest answer read from an authorization server; a larger one is refused.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// An exchanged token as cached: the token, until when it lives, and whose it is.
struct Cached {
    token: Secret,
    expires_at: OffsetDateTime,
    reference: CredentialRef,
    subject_digest: [u8; 32],
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
/// - **One way out.** Every call goes through [`identity_http::HttpClient`] under the store's
///   [`OutboundPolicy`]: public addresses only unless [`allow_private`] is set (checked on the
///   address connected to), no proxy from the environment, one error model (a 4xx with an OAuth
///   error object is a refusal with its code, whatever the status).
/// - **Discovery.** A slot configured with an issuer finds its token endpoint in the issuer's
///   metadata (RFC 8414, then OpenID discovery) once; the metadata's `issuer` must be the one
///   asked for, and its token endpoint must pass the policy.
///
/// [`allow_private`]: TokenExchangeStoreBuilder::allow_private
pub struct TokenExchangeStore {
    slots: HashMap<CredentialRef, Arc<Slot>>,
    order: Vec<CredentialRef>,
    http: HttpClient,
    cache: TokenCache<CacheKey, Arc<Cached>>,
    skew: Duration,
    retry: Retry,
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
    allow_private: bool,
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
    /// # Ok::<(), identity_core::Error>(())
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
            allow_private: false,
        }
    }

    /// Forgets every cached token of slot `reference` (after a 401 from its service, say).
    pub fn invalidate(&self, reference: &CredentialRef) {
        let reference = reference.clone();
        self.cache
            .invalidate_if(move |_, cached| cached.reference == reference);
    }

    /// Forgets every cached token exchanged for `subject` (at the user's logout, say).
    pub fn invalidate_subject(&self, subject: &Secret) {
        let digest: [u8; 32] = Sha256::digest(subject.expose_secret().as_bytes()).into();
        self.cache
            .invalidate_if(move |_, cached| cached.subject_digest == digest);
    }

    /// Forgets every cached token.
    pub fn flush(&self) {
        self.cache.clear();
    }

    /// The slot's token endpoint: configured, or discovered once from its issuer (a failed
    /// discovery is tried again next time).
    async fn endpoint(&self, slot: &Slot) -> Result<Url, Error> {
        match &slot.config.endpoint {
            Endpoint::Token(url) => Ok(url.clone()),
            Endpoint::Issuer(_, written) => slot
                .endpoint
                .get_or_try_init(|| self.discover(written, slot.config.allow_http_loopback))
                .await
                .cloned(),
        }
    }

    /// Reads the issuer's metadata ([`HttpClient::discover`]: RFC 8414, then OpenID discovery,
    /// the `issuer` equal to the one asked for, every endpoint under the policy); its token
    /// endpoint must also pass the checks a configured one does.
    async fn discover(&self, issuer: &str, allow_http_loopback: bool) -> Result<Url, Error> {
        let metadata = self.http.discover(issuer).await?;
        let endpoint = metadata.token_endpoint.ok_or_else(|| {
            identity_http::invalid_metadata(issuer, "the metadata has no `token_endpoint`")
        })?;
        check_endpoint(endpoint.as_str(), allow_http_loopback).map_err(|problem| {
            identity_http::invalid_metadata(issuer, &format!("its `token_endpoint` {problem}"))
        })
    }

    async fn exchange(
        &self,
        config: &ExchangeConfig,
        endpoint: &Url,
        subject: &Secret,
        actor: Option<&Secret>,
    ) -> Result<ExchangedToken, OAuthError> {
        let request = TokenRequest::new(endpoint, config, subject, actor);
        // The transport and its retries are identity-http's; the answer is read by RFC 8693's
        // rules.
        let answer = self
            .http
            .oauth_answer(
                endpoint,
                Some(&config.client),
                request.form(),
                self.retry,
                "token exchange",
            )
            .await?;
        read_token_response(config, &answer)
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

    /// Allows token endpoints and issuers at private, link-local and other non-public
    /// addresses (an authorization server inside the network). Off by default: a discovered
    /// endpoint that points inside the network is refused.
    pub fn allow_private(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }

    /// Checks the slots (one configuration per ref) and builds the store.
    pub fn build(self) -> Result<TokenExchangeStore, Error> {
        if self.attempts == 0 {
            return Err(
                ConfigError::new("token exchange store", Some("attempts"), "is zero").into(),
            );
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
                )
                .into());
            }
            order.push(reference);
        }
        let allow_http_loopback = slots.values().any(|slot| slot.config.allow_http_loopback);
        let policy = OutboundPolicy::default()
            .allow_http_loopback(allow_http_loopback)
            .allow_private(self.allow_private)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .max_body(MAX_RESPONSE_BYTES);
        let http = HttpClient::new(policy)?;
        for slot in slots.values() {
            let (url, field) = match &slot.config.endpoint {
                Endpoint::Token(url) => (url, "tokenEndpoint"),
                Endpoint::Issuer(url, _) => (url, "issuer"),
            };
            if let Err(err) = http.policy().check_url(url.as_str(), field) {
                return Err(ConfigError::new(
                    format!("token exchange `{}`", slot.config.reference),
                    Some(field),
                    format!(
                        "{err} (set `allow_private` for an authorization server inside the network)"
                    ),
                )
                .into());
            }
        }
        let cache = TokenCache::new(self.capacity).skew(self.skew);
        Ok(TokenExchangeStore {
            slots,
            order,
            http,
            cache,
            skew: self.skew,
            retry: Retry::new(self.attempts, self.backoff),
        })
    }
}

#[async_trait]
impl CredentialStore for TokenExchangeStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Each caller gets its own token.
    fn capabilities(&self) -> identity_core::Capabilities {
        identity_core::Capabilities::per_caller()
    }

    /// Forgets the exchanged token that was refused; the next resolution exchanges again.
    async fn forget_refused(
        &self,
        reference: &CredentialRef,
        _context: &RequestContext,
        secret: &Secret,
    ) -> Result<(), Error> {
        let (reference, secret) = (reference.clone(), secret.clone());
        self.cache.invalidate_if(move |_, cached| {
            cached.reference == reference && cached.token.expose_secret() == secret.expose_secret()
        });
        Ok(())
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
            .get_or_fetch(key, || async {
                let endpoint = self.endpoint(slot).await?;
                let token = self
                    .exchange(config, &endpoint, &subject, actor.as_ref())
                    .await
                    .map_err(|err| err.into_error(BACKEND))?;
                let now = OffsetDateTime::now_utc();
                let lifetime =
                    time::Duration::try_from(token.lifetime).unwrap_or(time::Duration::MAX);
                let cached = Arc::new(Cached {
                    expires_at: now.saturating_add(lifetime),
                    token: token.access_token,
                    reference: reference.clone(),
                    subject_digest: Sha256::digest(subject.expose_secret().as_bytes()).into(),
                });
                Ok::<_, Error>((cached, Some(token.lifetime)))
            })
            .await
            .map_err(|err: Arc<Error>| err.duplicate())?;
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
