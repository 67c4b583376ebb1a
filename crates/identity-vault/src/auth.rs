//! How the store authenticates to Vault, and the token it holds: renewed before it expires, and
//! replaced by a fresh login when renewal is no longer possible or the token was revoked.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use identity_core::Secret;
use rustify::clients::reqwest::Client as HttpClient;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::VaultClient;

use crate::failure::Failure;

/// Where a Kubernetes pod finds its service-account token.
pub const DEFAULT_KUBERNETES_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How the store authenticates to Vault.
///
/// Whatever the method, the store renews its token when two thirds of its TTL have passed. AppRole
/// and Kubernetes log in again when renewal fails, when the token reaches its maximum TTL, or when
/// Vault says the token is no longer valid (revoked); a fixed token cannot, so the store reports
/// [`identity_core::Error::Unauthenticated`] once it has expired or been revoked.
///
/// `Debug` names the method and the mount only.
///
/// ```
/// use identity_core::Secret;
/// use identity_vault::VaultAuth;
///
/// let auth = VaultAuth::app_role("role-id-canary", Secret::new("secret-id-canary"))
///     .with_mount("approle-agents");
/// let shown = format!("{auth:?}");
/// assert!(shown.contains("approle-agents") && !shown.contains("canary"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum VaultAuth {
    /// A token given as it is (`VAULT_TOKEN`).
    Token(Secret),
    /// AppRole: a role id and a secret id, logged in at `auth/<mount>/login`.
    AppRole {
        /// The auth mount, `approle` by default.
        mount: String,
        /// The role id.
        role_id: Secret,
        /// The secret id.
        secret_id: Secret,
    },
    /// Kubernetes: the pod's service-account JWT, read from `jwt_path` at each login (the
    /// kubelet rotates it), logged in at `auth/<mount>/login` as `role`.
    Kubernetes {
        /// The auth mount, `kubernetes` by default.
        mount: String,
        /// The Vault role to log in as.
        role: String,
        /// The file holding the service-account JWT.
        jwt_path: PathBuf,
    },
}

impl VaultAuth {
    /// A fixed token.
    ///
    /// ```
    /// let auth = identity_vault::VaultAuth::token(identity_core::Secret::new("s.canary"));
    /// assert_eq!(auth.method(), "token");
    /// ```
    pub fn token(token: Secret) -> Self {
        Self::Token(token)
    }

    /// AppRole on the `approle` mount.
    ///
    /// ```
    /// use identity_core::Secret;
    /// let auth = identity_vault::VaultAuth::app_role("role", Secret::new("sid"));
    /// assert_eq!(auth.method(), "approle");
    /// ```
    pub fn app_role(role_id: impl Into<String>, secret_id: Secret) -> Self {
        Self::AppRole {
            mount: "approle".into(),
            role_id: Secret::new(role_id.into()),
            secret_id,
        }
    }

    /// Kubernetes on the `kubernetes` mount, with the JWT at [`DEFAULT_KUBERNETES_JWT_PATH`].
    ///
    /// ```
    /// let auth = identity_vault::VaultAuth::kubernetes("agent-identity");
    /// assert_eq!(auth.method(), "kubernetes");
    /// ```
    pub fn kubernetes(role: impl Into<String>) -> Self {
        Self::Kubernetes {
            mount: "kubernetes".into(),
            role: role.into(),
            jwt_path: DEFAULT_KUBERNETES_JWT_PATH.into(),
        }
    }

    /// The same method on another auth mount (no effect on a fixed token).
    ///
    /// ```
    /// let auth = identity_vault::VaultAuth::kubernetes("r").with_mount("k8s-prod");
    /// assert!(format!("{auth:?}").contains("k8s-prod"));
    /// ```
    pub fn with_mount(mut self, new_mount: impl Into<String>) -> Self {
        match &mut self {
            Self::Token(_) => {}
            Self::AppRole { mount, .. } | Self::Kubernetes { mount, .. } => {
                *mount = new_mount.into()
            }
        }
        self
    }

    /// The Kubernetes method with the JWT read from `path` (no effect on other methods).
    ///
    /// ```
    /// let auth = identity_vault::VaultAuth::kubernetes("r").with_jwt_path("/tmp/jwt");
    /// assert!(format!("{auth:?}").contains("/tmp/jwt"));
    /// ```
    pub fn with_jwt_path(mut self, path: impl Into<PathBuf>) -> Self {
        if let Self::Kubernetes { jwt_path, .. } = &mut self {
            *jwt_path = path.into();
        }
        self
    }

    /// The method's name: `token`, `approle` or `kubernetes`.
    ///
    /// ```
    /// # use identity_core::Secret;
    /// assert_eq!(identity_vault::VaultAuth::token(Secret::new("t")).method(), "token");
    /// ```
    pub fn method(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::AppRole { .. } => "approle",
            Self::Kubernetes { .. } => "kubernetes",
        }
    }

    fn can_log_in(&self) -> bool {
        !matches!(self, Self::Token(_))
    }
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.debug_struct("Token").finish_non_exhaustive(),
            Self::AppRole { mount, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .finish_non_exhaustive(),
            Self::Kubernetes {
                mount,
                role,
                jwt_path,
            } => f
                .debug_struct("Kubernetes")
                .field("mount", mount)
                .field("role", role)
                .field("jwt_path", jwt_path)
                .finish(),
        }
    }
}

/// A token in use, with the client that sends it.
pub(crate) struct Session {
    pub(crate) client: VaultClient,
    /// Renew from this instant on; `None` for a token that does not expire.
    renew_at: Option<Instant>,
    /// The token is dead from this instant on.
    expires_at: Option<Instant>,
    renewable: bool,
    /// The TTL the token was issued or last renewed with.
    ttl: Duration,
    /// Counts logins and renewals, so that a caller invalidates only the session it used.
    generation: u64,
}

impl Session {
    fn due(&self, now: Instant) -> bool {
        self.renew_at.is_some_and(|at| now >= at)
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

/// Holds the store's current token and gets a new one when it is due: one refresh at a time,
/// whatever the number of requests waiting for it.
pub(crate) struct Sessions {
    /// A client without a token; each session's client shares its HTTP connection pool.
    base: VaultClient,
    auth: VaultAuth,
    current: RwLock<Option<Arc<Session>>>,
    refresh: Mutex<u64>,
}

impl Sessions {
    pub(crate) fn new(base: VaultClient, auth: VaultAuth) -> Self {
        Self {
            base,
            auth,
            current: RwLock::new(None),
            refresh: Mutex::new(0),
        }
    }

    pub(crate) fn method(&self) -> &'static str {
        self.auth.method()
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, session: Option<Arc<Session>>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = session;
    }

    /// The session to use now: the current one, renewed or replaced first if it is due.
    pub(crate) async fn get(&self) -> Result<Arc<Session>, Failure> {
        if let Some(session) = self.current()
            && !session.due(Instant::now())
        {
            return Ok(session);
        }
        let mut generation = self.refresh.lock().await;
        // Another caller may have refreshed while this one waited.
        let now = Instant::now();
        let current = self.current();
        if let Some(session) = &current
            && !session.due(now)
        {
            return Ok(session.clone());
        }
        *generation += 1;
        let session = match current {
            Some(session) if session.renewable && !session.expired(now) => {
                match self.renew(&session, *generation).await {
                    Ok(renewed) => renewed,
                    // Vault is unreachable: the token still works until it expires, and the
                    // next call tries again.
                    Err(Failure::Unavailable(_)) => return Ok(session),
                    Err(other) => return Err(other),
                }
            }
            Some(session) if !self.auth.can_log_in() && !session.expired(now) => {
                // A fixed token that cannot be renewed is used until it expires.
                Arc::new(self.session(
                    self.token_of(&session),
                    None,
                    session.expires_at,
                    false,
                    session.ttl,
                    *generation,
                ))
            }
            Some(_) if !self.auth.can_log_in() => {
                return Err(Failure::Unauthenticated(
                    "the store's Vault token has expired, and a fixed token cannot log in again"
                        .into(),
                ));
            }
            _ => self.log_in(*generation).await?,
        };
        self.set(Some(session.clone()));
        Ok(session)
    }

    /// Forgets the session of `generation` after Vault said its token is no longer valid, so
    /// that the next [`Sessions::get`] logs in again.
    pub(crate) async fn invalidate(&self, generation: u64) {
        let _guard = self.refresh.lock().await;
        if self.current().is_some_and(|s| s.generation == generation) {
            self.set(None);
        }
    }

    /// True when the store can get a new token by itself.
    pub(crate) fn can_log_in(&self) -> bool {
        self.auth.can_log_in()
    }

    async fn renew(&self, session: &Session, generation: u64) -> Result<Arc<Session>, Failure> {
        match vaultrs::token::renew_self(&session.client, None).await {
            Ok(renewed) => {
                let ttl = Duration::from_secs(renewed.lease_duration);
                // At its maximum TTL a token is renewed for less and less: log in anew instead.
                if self.auth.can_log_in() && ttl < session.ttl / 2 {
                    debug!(
                        method = self.method(),
                        "token near its maximum TTL; logging in again"
                    );
                    return self.log_in(generation).await;
                }
                debug!(
                    method = self.method(),
                    ttl_secs = ttl.as_secs(),
                    "renewed the store's Vault token"
                );
                Ok(Arc::new(self.timed_session(
                    self.token_of(session),
                    ttl,
                    renewed.renewable,
                    generation,
                )))
            }
            Err(error) => {
                let failure = Failure::from_client(&error);
                if self.auth.can_log_in() {
                    debug!(method = self.method(), "renewal failed; logging in again");
                    return self.log_in(generation).await;
                }
                warn!(
                    method = self.method(),
                    "the store's Vault token could not be renewed"
                );
                match failure {
                    Failure::Denied => Err(Failure::Unauthenticated(
                        "the store's Vault token is no longer valid".into(),
                    )),
                    other => Err(other),
                }
            }
        }
    }

    async fn log_in(&self, generation: u64) -> Result<Arc<Session>, Failure> {
        fn unauthenticated(what: &'static str) -> impl Fn(vaultrs::error::ClientError) -> Failure {
            move |error| match Failure::from_client(&error) {
                Failure::Denied | Failure::Rejected { .. } | Failure::Unauthenticated(_) => {
                    Failure::Unauthenticated(format!("{what} was refused by Vault"))
                }
                other => other,
            }
        }
        let info = match &self.auth {
            VaultAuth::Token(token) => {
                let token = token.expose_secret().to_owned();
                check_token(&token)?;
                let client = self.with_token(token.clone());
                let looked_up = vaultrs::token::lookup_self(&client)
                    .await
                    .map_err(unauthenticated("the store's Vault token"))?;
                let ttl = Duration::from_secs(looked_up.ttl);
                return Ok(Arc::new(self.timed_session(
                    token,
                    ttl,
                    looked_up.renewable.unwrap_or(false),
                    generation,
                )));
            }
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => vaultrs::auth::approle::login(
                &self.base,
                mount,
                role_id.expose_secret(),
                secret_id.expose_secret(),
            )
            .await
            .map_err(unauthenticated("the AppRole login"))?,
            VaultAuth::Kubernetes {
                mount,
                role,
                jwt_path,
            } => {
                let jwt = tokio::fs::read_to_string(jwt_path).await.map_err(|err| {
                    Failure::Unauthenticated(format!(
                        "the service-account token {} cannot be read: {}",
                        jwt_path.display(),
                        err.kind()
                    ))
                })?;
                vaultrs::auth::kubernetes::login(&self.base, mount, role, jwt.trim())
                    .await
                    .map_err(unauthenticated("the Kubernetes login"))?
            }
        };
        check_token(&info.client_token)?;
        info!(
            method = self.method(),
            ttl_secs = info.lease_duration,
            "logged in to Vault"
        );
        Ok(Arc::new(self.timed_session(
            info.client_token,
            Duration::from_secs(info.lease_duration),
            info.renewable,
            generation,
        )))
    }

    fn timed_session(
        &self,
        token: String,
        ttl: Duration,
        renewable: bool,
        generation: u64,
    ) -> Session {
        let now = Instant::now();
        // A TTL of zero is a token that does not expire (a root token).
        let (renew_at, expires_at) = if ttl.is_zero() {
            (None, None)
        } else {
            (now.checked_add(ttl * 2 / 3), now.checked_add(ttl))
        };
        self.session(token, renew_at, expires_at, renewable, ttl, generation)
    }

    fn session(
        &self,
        token: String,
        renew_at: Option<Instant>,
        expires_at: Option<Instant>,
        renewable: bool,
        ttl: Duration,
        generation: u64,
    ) -> Session {
        Session {
            client: self.with_token(token),
            renew_at,
            expires_at,
            renewable,
            ttl,
            generation,
        }
    }

    fn token_of(&self, session: &Session) -> String {
        session.client.middle.token.clone()
    }

    /// A client sending `token`, sharing the base client's connections.
    fn with_token(&self, token: String) -> VaultClient {
        let mut settings = self.base.settings.clone();
        settings.token.clone_from(&token);
        VaultClient {
            http: HttpClient::new(&self.base.http.base, self.base.http.http.clone()),
            middle: EndpointMiddleware {
                token,
                ..self.base.middle.clone()
            },
            settings,
        }
    }
}

/// vaultrs puts the token in a header with `unwrap`: anything that is not a header value would
/// panic there, so it is refused here first.
pub(crate) fn check_token(token: &str) -> Result<(), Failure> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Failure::Unauthenticated(
            "the Vault token is empty or has characters a header cannot carry".into(),
        ));
    }
    Ok(())
}
