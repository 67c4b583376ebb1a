//! `DelegatedTokenStore`: each user's own tokens per provider, refreshed on read.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, Error, OffsetDateTime,
    RequestContext, Secret,
};
use identity_http::KeyedLocks;
use tracing::{info, instrument, warn};

use crate::BACKEND;
use crate::provider::Provider;
use crate::tokens::TokenSet;

/// Whose tokens: a user and a provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Connection {
    /// The user (the request context's `userId`).
    pub user: String,
    /// The provider's name (`github`, `google`, ...).
    pub provider: String,
}

/// A stored connection and its version, for compare-and-set. `Debug` shows no token.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The tokens.
    pub tokens: TokenSet,
    /// Changes with every save.
    pub version: u64,
}

/// Where connections are kept, with what makes a refresh safe across replicas: a save that
/// succeeds only on the version read, and a refresh lease.
///
/// ```
/// fn takes(_: &dyn identity_oauth::TokenPersistence) {}
/// takes(&identity_oauth::MemoryTokens::default());
/// ```
#[async_trait]
pub trait TokenPersistence: Send + Sync + fmt::Debug + 'static {
    /// The connection's tokens and version.
    async fn load(&self, connection: &Connection) -> Result<Option<Versioned>, Error>;
    /// Saves `tokens` if the stored version is still `expected` (`None`: absent); the new
    /// version, or `None` when another writer came first.
    async fn save_if(
        &self,
        connection: &Connection,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error>;
    /// Forgets the connection.
    async fn remove(&self, connection: &Connection) -> Result<(), Error>;
    /// Takes the refresh lease of `connection` for `holder` until `ttl` has passed: `true` when
    /// taken. Only the holder refreshes, so a rotating refresh token is never spent twice.
    async fn try_lease(
        &self,
        connection: &Connection,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, Error>;
    /// Gives the lease back.
    async fn release(&self, connection: &Connection, holder: &str) -> Result<(), Error>;
}

/// Connections kept in memory (one process: its in-process lock already serialises refreshes).
#[derive(Debug, Default)]
pub struct MemoryTokens {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    records: HashMap<Connection, Versioned>,
    leases: HashMap<Connection, (String, tokio::time::Instant)>,
    next_version: u64,
}

impl fmt::Debug for MemoryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryState")
            .field("connections", &self.records.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenPersistence for MemoryTokens {
    async fn load(&self, connection: &Connection) -> Result<Option<Versioned>, Error> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(state.records.get(connection).cloned())
    }

    async fn save_if(
        &self,
        connection: &Connection,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let current = state.records.get(connection).map(|r| r.version);
        if current != expected {
            return Ok(None);
        }
        state.next_version += 1;
        let version = state.next_version;
        state.records.insert(
            connection.clone(),
            Versioned {
                tokens: tokens.clone(),
                version,
            },
        );
        Ok(Some(version))
    }

    async fn remove(&self, connection: &Connection) -> Result<(), Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.records.remove(connection);
        Ok(())
    }

    async fn try_lease(
        &self,
        connection: &Connection,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        match state.leases.get(connection) {
            Some((other, until)) if other != holder && *until > now => Ok(false),
            _ => {
                state
                    .leases
                    .insert(connection.clone(), (holder.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn release(&self, connection: &Connection, holder: &str) -> Result<(), Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .leases
            .get(connection)
            .is_some_and(|(h, _)| h == holder)
        {
            state.leases.remove(connection);
        }
        Ok(())
    }
}

/// Each user's own tokens per provider (a user's GitHub, a user's Google), as credentials of
/// kind `user-delegated`: a slot names a provider, and a resolution for user `u` yields `u`'s
/// access token.
///
/// - Tokens are refreshed on read when they expire within the refresh window (60 s by default).
///   One refresh per connection at a time: in this process by a lock, and across replicas by a
///   refresh lease taken through the [`TokenPersistence`] before the refresh token is spent. The
///   new tokens are saved (compare-and-set) before the access token is handed out.
/// - A refresh runs in a task of its own: a caller that goes away (a client disconnect, a
///   request timeout) does not cancel it between the provider's rotation of the refresh token
///   and the save of the new one. The lease is given back by a guard, whatever happens.
/// - A refresh token the server refuses (`invalid_grant`) marks the connection as needing the
///   user's consent again: its refresh token is forgotten, so no later resolution calls the
///   provider with it; each is a clear denial ([`Error::ConsentRequired`], "connect again") once
///   the access token has expired. The connection is kept until the user connects again or
///   disconnects.
/// - A refresh that fails for a while (the provider is down) while the access token is still
///   valid hands out the access token it has.
/// - [`DelegatedTokenStore::disconnect`] revokes at the server, then forgets.
///
/// ```
/// # use std::sync::Arc;
/// use identity_oauth::{DelegatedTokenStore, MemoryTokens};
/// let store = DelegatedTokenStore::new(Arc::new(MemoryTokens::default()));
/// assert!(format!("{store:?}").contains("DelegatedTokenStore"));
/// ```
pub struct DelegatedTokenStore {
    persistence: Arc<dyn TokenPersistence>,
    providers: HashMap<String, Arc<Provider>>,
    slots: HashMap<CredentialRef, String>,
    locks: KeyedLocks<Connection>,
    refresh_window: Duration,
    holder: Arc<str>,
}

impl fmt::Debug for DelegatedTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut providers: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        providers.sort_unstable();
        f.debug_struct("DelegatedTokenStore")
            .field("providers", &providers)
            .finish_non_exhaustive()
    }
}

impl DelegatedTokenStore {
    /// A store keeping connections in `persistence`, with no provider yet.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let store = identity_oauth::DelegatedTokenStore::new(Arc::new(identity_oauth::MemoryTokens::default()));
    /// ```
    pub fn new(persistence: Arc<dyn TokenPersistence>) -> Self {
        Self {
            persistence,
            providers: HashMap::new(),
            slots: HashMap::new(),
            locks: KeyedLocks::default(),
            refresh_window: Duration::from_secs(60),
            // Random enough to tell replicas apart in leases; not a secret.
            holder: crate::flow::random_token(12)
                .unwrap_or_else(|_| "replica".into())
                .into(),
        }
    }

    /// Serves `provider`, whose tokens slot `reference` yields.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use identity_core::CredentialRef;
    /// use identity_oauth::{DelegatedTokenStore, MemoryTokens, Provider};
    /// let store = DelegatedTokenStore::new(Arc::new(MemoryTokens::default()))
    ///     .provider(CredentialRef::new("user-kaggle")?, Provider::kaggle());
    /// assert!(store.provider_named("kaggle").is_some());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn provider(mut self, reference: CredentialRef, provider: Provider) -> Self {
        let name = provider.name().to_owned();
        self.slots.insert(reference, name.clone());
        self.providers.insert(name, Arc::new(provider));
        self
    }

    /// The provider named `name`, if this store serves it.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let store = identity_oauth::DelegatedTokenStore::new(Arc::new(identity_oauth::MemoryTokens::default()));
    /// assert!(store.provider_named("github").is_none());
    /// ```
    pub fn provider_named(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.get(name)
    }

    /// The providers served, each with the slot that yields its tokens, sorted by name.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use identity_oauth::{DelegatedTokenStore, MemoryTokens, Provider};
    /// let store = DelegatedTokenStore::new(Arc::new(MemoryTokens::default()))
    ///     .provider(identity_core::CredentialRef::new("user-kaggle")?, Provider::kaggle());
    /// let served: Vec<_> = store.served().map(|(r, p)| (r.as_str(), p.name())).collect();
    /// assert_eq!(served, [("user-kaggle", "kaggle")]);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn served(&self) -> impl Iterator<Item = (&CredentialRef, &Arc<Provider>)> {
        let mut served: Vec<_> = self
            .slots
            .iter()
            .filter_map(|(reference, name)| Some((reference, self.providers.get(name)?)))
            .collect();
        served.sort_by(|a, b| a.1.name().cmp(b.1.name()));
        served.into_iter()
    }

    /// `user`'s stored tokens for `provider`, as they are (not refreshed): for showing a
    /// connection's status.
    ///
    /// ```no_run
    /// # async fn example(store: identity_oauth::DelegatedTokenStore) -> Result<(), identity_core::Error> {
    /// if let Some(tokens) = store.stored("alice", "github").await? {
    ///     println!("{}", tokens.status_at(identity_core::OffsetDateTime::now_utc()));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn stored(&self, user: &str, provider: &str) -> Result<Option<TokenSet>, Error> {
        let connection = Connection {
            user: user.to_owned(),
            provider: provider.to_owned(),
        };
        Ok(self.persistence.load(&connection).await?.map(|v| v.tokens))
    }

    /// Refresh when the access token expires within `window` (60 s).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let store = identity_oauth::DelegatedTokenStore::new(Arc::new(identity_oauth::MemoryTokens::default()))
    ///     .refresh_window(std::time::Duration::from_secs(120));
    /// ```
    pub fn refresh_window(mut self, window: Duration) -> Self {
        self.refresh_window = window;
        self
    }

    /// Keeps `tokens` as `user`'s connection to `provider` (after the code exchange).
    ///
    /// ```no_run
    /// # async fn example(store: identity_oauth::DelegatedTokenStore, tokens: identity_oauth::TokenSet) -> Result<(), identity_core::Error> {
    /// store.connect("alice", "github", &tokens).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        &self,
        user: &str,
        provider: &str,
        tokens: &TokenSet,
    ) -> Result<(), Error> {
        let connection = Connection {
            user: user.to_owned(),
            provider: provider.to_owned(),
        };
        // Replace whatever there was, whatever its version.
        loop {
            let expected = self.persistence.load(&connection).await?.map(|v| v.version);
            if self
                .persistence
                .save_if(&connection, tokens, expected)
                .await?
                .is_some()
            {
                info!(user, provider, "connected");
                return Ok(());
            }
        }
    }

    /// Revokes `user`'s tokens at `provider` (refresh token first), then forgets them: `true`
    /// when they were revoked at the provider, `false` when the provider offers no revocation
    /// (an API token, which its owner revokes on the provider's site) or there was no
    /// connection. A revocation that fails leaves the connection in place and reports why:
    /// forgetting is not revoking.
    ///
    /// ```no_run
    /// # async fn example(store: identity_oauth::DelegatedTokenStore) -> Result<(), identity_core::Error> {
    /// let revoked = store.disconnect("alice", "github").await?;
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(&self, user: &str, provider: &str) -> Result<bool, Error> {
        let connection = Connection {
            user: user.to_owned(),
            provider: provider.to_owned(),
        };
        let Some(stored) = self.persistence.load(&connection).await? else {
            return Ok(false);
        };
        let revoked = match self.providers.get(provider) {
            Some(settings) => settings.revoke(&stored.tokens).await?,
            None => false,
        };
        self.persistence.remove(&connection).await?;
        info!(user, provider, revoked, "disconnected");
        Ok(revoked)
    }

    /// `user`'s access token at `provider`, refreshed first when it is near expiry (as a
    /// resolution refreshes it): what a client of the provider's resource presents. No
    /// connection, or one that can no longer be refreshed, is [`Error::ConsentRequired`].
    ///
    /// ```no_run
    /// # async fn example(store: identity_oauth::DelegatedTokenStore) -> Result<(), identity_core::Error> {
    /// let token = store.access_token("alice", "crm").await?;
    /// # Ok(()) }
    /// ```
    pub async fn access_token(&self, user: &str, provider: &str) -> Result<Secret, Error> {
        let connection = Connection {
            user: user.to_owned(),
            provider: provider.to_owned(),
        };
        let consent = |detail: String| Error::ConsentRequired {
            backend: BACKEND,
            provider: provider.to_owned(),
            scopes: Vec::new(),
            detail,
        };
        match self.fresh_tokens(&connection).await {
            Ok(Some(tokens)) => Ok(tokens.access_token),
            Ok(None) => Err(consent(format!("{user} has not connected {provider}"))),
            Err(Error::Unauthenticated { detail, .. }) => Err(consent(detail)),
            Err(err) => Err(err),
        }
    }

    /// Notes that `provider`'s resource refused `token` (a 401) although it had not expired:
    /// revoked, or its keys changed. If it is still the connection's access token, it is
    /// marked expired, so that the next read refreshes it once (one refresh across replicas,
    /// as any), or asks for the user's consent when it cannot be refreshed. A token replaced
    /// meanwhile is left alone.
    ///
    /// ```no_run
    /// # async fn example(store: identity_oauth::DelegatedTokenStore, token: identity_core::Secret) -> Result<(), identity_core::Error> {
    /// store.refused("alice", "crm", &token).await?;
    /// let fresh = store.access_token("alice", "crm").await?;
    /// # Ok(()) }
    /// ```
    pub async fn refused(&self, user: &str, provider: &str, token: &Secret) -> Result<(), Error> {
        let connection = Connection {
            user: user.to_owned(),
            provider: provider.to_owned(),
        };
        let Some(stored) = self.persistence.load(&connection).await? else {
            return Ok(());
        };
        if stored.tokens.access_token.expose_secret() != token.expose_secret() {
            return Ok(());
        }
        let mut expired = stored.tokens.clone();
        expired.expires_at = Some(OffsetDateTime::now_utc() - Duration::from_secs(1));
        // Lost to another writer: the connection changed (refreshed) since the refusal.
        let _ = self
            .persistence
            .save_if(&connection, &expired, Some(stored.version))
            .await?;
        info!(
            user,
            provider, "a token the resource refused is due for refresh"
        );
        Ok(())
    }

    /// The connection's tokens, refreshed first when they are near expiry.
    async fn fresh_tokens(&self, connection: &Connection) -> Result<Option<TokenSet>, Error> {
        let Some(stored) = self.persistence.load(connection).await? else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        if !stored.tokens.expires_within(now, self.refresh_window) {
            return Ok(Some(stored.tokens));
        }
        if stored.tokens.refresh_token.is_none() {
            // Nothing to refresh with (a refresh token refused before, or none issued): the
            // access token serves until it expires, then the user must connect again.
            return if stored.tokens.is_expired_at(now) {
                Err(connect_again(connection))
            } else {
                Ok(Some(stored.tokens))
            };
        }
        let provider =
            self.providers
                .get(&connection.provider)
                .cloned()
                .ok_or(Error::NotSupported {
                    operation: "refresh for a provider this store does not serve",
                    backend: BACKEND,
                })?;
        let held = self.locks.lock(connection.clone()).await;
        let job = Refresh {
            persistence: Arc::clone(&self.persistence),
            provider,
            connection: connection.clone(),
            holder: Arc::clone(&self.holder),
            window: self.refresh_window,
        };
        // Its own task: a caller dropped mid-refresh must not leave a rotated refresh token
        // unsaved. The connection's lock goes with it.
        tokio::spawn(async move {
            let outcome = job.run().await;
            drop(held);
            outcome
        })
        .await
        .map_err(|_| Error::unavailable(BACKEND, "the refresh task failed"))?
    }
}

fn connect_again(connection: &Connection) -> Error {
    Error::Unauthenticated {
        backend: BACKEND,
        detail: format!(
            "{}'s connection to {} must be made again",
            connection.user, connection.provider
        ),
    }
}

/// One refresh of one connection, with what it needs to run on its own.
struct Refresh {
    persistence: Arc<dyn TokenPersistence>,
    provider: Arc<Provider>,
    connection: Connection,
    holder: Arc<str>,
    window: Duration,
}

/// A refresh lease, given back when dropped if it was not given back before.
struct Lease<'a> {
    refresh: &'a Refresh,
    held: bool,
}

impl Lease<'_> {
    async fn release(mut self) -> Result<(), Error> {
        self.held = false;
        self.refresh
            .persistence
            .release(&self.refresh.connection, &self.refresh.holder)
            .await
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.held
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let persistence = Arc::clone(&self.refresh.persistence);
            let connection = self.refresh.connection.clone();
            let holder = Arc::clone(&self.refresh.holder);
            runtime.spawn(async move {
                let _ = persistence.release(&connection, &holder).await;
            });
        }
    }
}

impl Refresh {
    async fn run(&self) -> Result<Option<TokenSet>, Error> {
        let connection = &self.connection;
        for _ in 0..50 {
            // Another task or replica may have refreshed while this one waited.
            let Some(stored) = self.persistence.load(connection).await? else {
                return Ok(None);
            };
            if !self.due(&stored.tokens) {
                return Ok(Some(stored.tokens));
            }
            let lease_ttl = Duration::from_secs(30);
            if !self
                .persistence
                .try_lease(connection, &self.holder, lease_ttl)
                .await?
            {
                // Another replica is refreshing: wait for its result.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let lease = Lease {
                refresh: self,
                held: true,
            };
            // Read again under the lease: another replica may have refreshed, and released,
            // since the read above, and its refresh token is the only one still good.
            let result = match self.persistence.load(connection).await {
                Ok(Some(current)) if self.due(&current.tokens) => {
                    self.refresh(&current).await.map(Some)
                }
                Ok(current) => Ok(current.map(|c| c.tokens)),
                Err(err) => Err(err),
            };
            lease.release().await?;
            return result;
        }
        Err(Error::unavailable(
            BACKEND,
            "another replica held the refresh lease too long",
        ))
    }

    /// True when `tokens` should be refreshed now (and can be).
    fn due(&self, tokens: &TokenSet) -> bool {
        tokens.refresh_token.is_some()
            && tokens.expires_within(OffsetDateTime::now_utc(), self.window)
    }

    async fn refresh(&self, stored: &Versioned) -> Result<TokenSet, Error> {
        let connection = &self.connection;
        let fresh = match self.provider.refresh(&stored.tokens).await {
            Ok(fresh) => fresh,
            Err(Error::Unauthenticated { .. }) => {
                // The refresh token is dead: forget it, so that no later read spends a call on
                // it, and keep the access token for as long as it lasts.
                let mut marked = stored.tokens.clone();
                marked.refresh_token = None;
                self.persistence
                    .save_if(connection, &marked, Some(stored.version))
                    .await?;
                warn!(user = %connection.user, provider = %connection.provider, "refresh token refused: the user must connect again");
                return Err(connect_again(connection));
            }
            Err(err)
                if err.is_retryable()
                    && !stored.tokens.is_expired_at(OffsetDateTime::now_utc()) =>
            {
                warn!(user = %connection.user, provider = %connection.provider, error = %err, "refresh failed; the access token still serves");
                return Ok(stored.tokens.clone());
            }
            Err(err) => return Err(err),
        };
        // Saved before the access token is used: a rotated refresh token must not be lost.
        match self
            .persistence
            .save_if(connection, &fresh, Some(stored.version))
            .await?
        {
            Some(_) => Ok(fresh),
            None => Err(Error::unavailable(
                BACKEND,
                "the connection changed while it was refreshed; try again",
            )),
        }
    }
}

#[async_trait]
impl CredentialStore for DelegatedTokenStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Each caller gets its own token.
    fn capabilities(&self) -> identity_core::Capabilities {
        identity_core::Capabilities::per_caller()
    }

    /// The provider's API refused the user's access token (revoked, or expired early): it is
    /// marked expired, so that the next read refreshes it, or, with no refresh token, asks the
    /// user to connect again. Only that token: one refreshed meanwhile stays.
    #[instrument(skip_all, fields(reference = %reference))]
    async fn forget_refused(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
        secret: &Secret,
    ) -> Result<(), Error> {
        let Some(provider) = self.slots.get(reference) else {
            return Ok(());
        };
        let connection = Connection {
            user: context.user_id.clone(),
            provider: provider.clone(),
        };
        let Some(stored) = self.persistence.load(&connection).await? else {
            return Ok(());
        };
        if stored.tokens.access_token.expose_secret() != secret.expose_secret() {
            return Ok(());
        }
        let mut expired = stored.tokens.clone();
        expired.expires_at = Some(OffsetDateTime::now_utc() - time::Duration::seconds(1));
        // Saved only over the version read: a refresh that came first is newer, and stays.
        if self
            .persistence
            .save_if(&connection, &expired, Some(stored.version))
            .await?
            .is_some()
        {
            info!(user = %connection.user, provider = %connection.provider, "access token refused by the provider: marked expired");
        }
        Ok(())
    }

    #[instrument(skip_all, fields(reference = %reference))]
    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        let Some(provider) = self.slots.get(reference) else {
            return Ok(None);
        };
        let connection = Connection {
            user: context.user_id.clone(),
            provider: provider.clone(),
        };
        // No connection, or one that can no longer be refreshed: the user's consent fixes it,
        // and the denial says so (with the provider), rather than a bare "not found".
        let consent = |detail: String| Error::ConsentRequired {
            backend: BACKEND,
            provider: connection.provider.clone(),
            scopes: Vec::new(),
            detail,
        };
        let tokens = match self.fresh_tokens(&connection).await {
            Ok(Some(tokens)) => tokens,
            Ok(None) => {
                return Err(consent(format!(
                    "{} has not connected {}",
                    connection.user, connection.provider
                )));
            }
            Err(Error::Unauthenticated { detail, .. }) => return Err(consent(detail)),
            Err(err) => return Err(err),
        };
        let mut credential = Credential::new(
            format!("oauth:{}:{}", connection.provider, connection.user),
            CredentialKind::UserDelegated,
            reference.as_str(),
        )?
        .with_provider(connection.provider.clone())
        .with_secret(tokens.access_token);
        credential.expires_at = tokens.expires_at;
        credential.scope = tokens.scope.unwrap_or_default();
        Ok(Some(credential))
    }

    /// One credential per slot (its metadata; each user's tokens are behind it).
    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        let mut listed = Vec::new();
        for (reference, provider) in &self.slots {
            listed.push(
                Credential::new(
                    format!("oauth:{provider}"),
                    CredentialKind::UserDelegated,
                    reference.as_str(),
                )?
                .with_provider(provider.clone()),
            );
        }
        listed.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(listed)
    }

    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        Ok(self
            .list_active()
            .await?
            .into_iter()
            .filter(|c| c.kind == kind)
            .collect())
    }
}
