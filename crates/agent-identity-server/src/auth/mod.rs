//! Caller authentication: none, API keys, bearer JWTs checked against the issuer's JWKS, or the
//! client certificate of the TLS handshake (an X.509-SVID).
//!
//! An authenticated caller may be bound to a user (a JWT's subject, an API key's `user_id`);
//! a request body that names another user is then refused.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use agent_identity::layer::json_error;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use agent_identity::{Secret, SubjectToken};

pub mod settings;

use agent_identity::identity_http::{HttpClient, OutboundPolicy};

use settings::{ApiKey, AuthSettings, Callers, JwtSettings};

use crate::tls::PeerWorkload;

/// Who is calling, as far as authentication tells.
#[derive(Debug, Clone)]
pub struct Caller {
    /// How the caller is known: an API key's name, a JWT's subject, or `anonymous`.
    pub name: String,
    /// The user the caller is bound to; a body naming another user is refused.
    pub user_id: Option<String>,
    /// The caller's own token, when it authenticated with one (a JWT): stores that act for the
    /// caller (token exchange) present it as the subject token.
    pub subject_token: Option<SubjectToken>,
    /// What the caller may do beyond resolving.
    pub permissions: Permissions,
    /// The workload the caller proved it is (a SPIFFE ID); a body's `spiffeId` must be this.
    pub workload: Option<agent_identity::SpiffeId>,
    /// The workload's own token, when it proved itself with a JWT-SVID: stores that delegate
    /// (token exchange) present it as the actor token.
    pub actor_token: Option<SubjectToken>,
}

/// Something a caller may do beyond resolving, granted per API key or by a JWT scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Receive a credential's secret from `POST /api/deliver` (when the credential or its rule
    /// also allows delivery).
    ReceiveSecrets,
    /// Approve or reject held calls through `/api/approvals` (the approver role).
    Approve,
    /// Pass a held call by break-glass, with a justification, where its demand allows it.
    BreakGlass,
    /// Reload the configuration (`POST /api/reload`).
    Reload,
    /// Revoke a credential or a user's connection on every replica (`POST /api/revocations`).
    Revoke,
}

impl Permission {
    const fn bit(self) -> u8 {
        match self {
            Self::ReceiveSecrets => 1,
            Self::Approve => 2,
            Self::BreakGlass => 4,
            Self::Reload => 8,
            Self::Revoke => 16,
        }
    }

    const ALL: [(Self, &'static str); 5] = [
        (Self::ReceiveSecrets, "receive-secrets"),
        (Self::Approve, "approve"),
        (Self::BreakGlass, "break-glass"),
        (Self::Reload, "reload"),
        (Self::Revoke, "revoke"),
    ];
}

/// A set of [`Permission`]s; empty by default.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Permissions(u8);

impl Permissions {
    /// The set with `permission` added.
    #[must_use]
    pub const fn with(self, permission: Permission) -> Self {
        Self(self.0 | permission.bit())
    }

    /// True when `permission` is in the set.
    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::default(), Self::with)
    }
}

impl std::fmt::Debug for Permissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut set = f.debug_set();
        for (permission, name) in Permission::ALL {
            if self.contains(permission) {
                set.entry(&name);
            }
        }
        set.finish()
    }
}

/// SHA-256 of an API key: keys are kept and compared only as digests.
pub fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// The accepted JWT algorithms, or what is wrong with the list. HMAC algorithms are refused: a
/// shared secret in a JWKS would let anyone who can read it mint tokens.
pub fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() {
        return Err("is empty".into());
    }
    names
        .iter()
        .map(|name| match name.as_str() {
            "RS256" => Ok(Algorithm::RS256),
            "RS384" => Ok(Algorithm::RS384),
            "RS512" => Ok(Algorithm::RS512),
            "PS256" => Ok(Algorithm::PS256),
            "PS384" => Ok(Algorithm::PS384),
            "PS512" => Ok(Algorithm::PS512),
            "ES256" => Ok(Algorithm::ES256),
            "ES384" => Ok(Algorithm::ES384),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other => Err(format!(
                "`{other}` is not accepted; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
            )),
        })
        .collect()
}

/// Checks that a JWKS URL is HTTPS, or plain HTTP on a loopback address when allowed.
pub fn check_jwks_url(url: &str, allow_http_loopback: bool) -> Result<reqwest::Url, String> {
    jwks_policy(allow_http_loopback)
        .check_url(url, "jwks_url")
        .map_err(|err| match err {
            agent_identity::Error::Protocol {
                description: Some(problem),
                ..
            } => problem.trim_start_matches("`jwks_url` ").to_owned(),
            other => other.to_string(),
        })
}

/// The outbound policy of the JWKS fetch: the issuer is the operator's, so an address inside
/// the network is allowed; HTTPS only, plain HTTP to this machine when allowed.
fn jwks_policy(allow_http_loopback: bool) -> OutboundPolicy {
    OutboundPolicy::default()
        .allow_http_loopback(allow_http_loopback)
        .allow_private(true)
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .max_body(MAX_JWKS_BYTES)
}

/// Why a caller was not authenticated. Messages say what is wrong, never echo a credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials were presented.
    #[error("this server requires authentication: send `Authorization: Bearer <token>`")]
    Missing,
    /// The API key matches none configured.
    #[error("the API key is not valid")]
    BadKey,
    /// The JWT is not acceptable; the reason is safe to show.
    #[error("the bearer token is not valid: {0}")]
    BadToken(String),
    /// The keys to check the token with could not be obtained.
    #[error("the token issuer's keys are unavailable")]
    KeysUnavailable,
    /// The JWT-SVID of the workload-token header is not acceptable; the reason is safe to show.
    #[error("the workload token is not valid: {0}")]
    BadWorkloadToken(String),
    /// Mode `x509-svid`, and the connection presented no client certificate.
    #[error("this server requires a client certificate (an X.509-SVID)")]
    NoCertificate,
    /// Two credentials of the request stand for different workloads.
    #[error(
        "{proof} proves workload `{proved}`, but the caller's credential stands for `{claimed}`"
    )]
    WorkloadConflict {
        /// What proved `proved`: the client certificate, or the workload token.
        proof: &'static str,
        /// The workload it proved.
        proved: String,
        /// The workload the caller's credential stands for.
        claimed: String,
    },
}

impl AuthError {
    fn response(&self) -> Response {
        let (status, code) = match self {
            Self::KeysUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable"),
            _ => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        };
        let mut response = json_error(status, code, &self.to_string());
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The header that carries the calling workload's JWT-SVID beside the caller's own credential
/// (`[auth.workload_jwt]`). Under the proxy's context prefix, so the proxy never passes it on.
pub const WORKLOAD_TOKEN_HEADER: &str = "x-agent-identity-workload-token";

/// Authenticates callers as the configuration says.
#[derive(Debug)]
pub struct Authenticator {
    scheme: Scheme,
    /// Verifies the JWT-SVID of [`WORKLOAD_TOKEN_HEADER`], when configured.
    workload_tokens: Option<Arc<JwtVerifier>>,
}

/// How the caller's own credential is checked.
#[derive(Debug)]
enum Scheme {
    /// Everyone is anonymous.
    None,
    /// API keys.
    ApiKeys(Vec<ApiKey>),
    /// JWTs.
    Jwt(Arc<JwtVerifier>),
    /// Client certificates (X.509-SVIDs), verified in the TLS handshake.
    X509Svid,
}

impl Authenticator {
    /// Prepares authentication; a JWKS is fetched now so that a bad source fails at start.
    pub async fn new(settings: AuthSettings) -> Result<Self, String> {
        let scheme = match settings.callers {
            Callers::None => Scheme::None,
            Callers::ApiKeys(keys) => Scheme::ApiKeys(keys),
            Callers::Jwt(jwt) => Scheme::Jwt(Arc::new(JwtVerifier::new(*jwt).await?)),
            Callers::X509Svid => Scheme::X509Svid,
        };
        let workload_tokens = match settings.workload_tokens {
            Some(jwt) => Some(Arc::new(JwtVerifier::new(jwt).await?)),
            None => None,
        };
        Ok(Self {
            scheme,
            workload_tokens,
        })
    }

    /// No authentication: every caller is anonymous.
    ///
    /// ```
    /// assert!(agent_identity_server::auth::Authenticator::none().is_none());
    /// ```
    pub fn none() -> Self {
        Self {
            scheme: Scheme::None,
            workload_tokens: None,
        }
    }

    /// True when nobody is authenticated.
    pub fn is_none(&self) -> bool {
        matches!(self.scheme, Scheme::None)
    }

    /// The JWT verifiers, whose keys are to be kept fresh.
    pub fn jwt_verifiers(&self) -> Vec<Arc<JwtVerifier>> {
        let mut verifiers: Vec<_> = self.workload_tokens.iter().cloned().collect();
        if let Scheme::Jwt(verifier) = &self.scheme {
            verifiers.push(verifier.clone());
        }
        verifiers
    }

    /// Who is calling, as `headers` and the connection's client certificate (`peer`) say. A
    /// certificate's or a workload token's workload is the caller's; credentials that stand
    /// for different workloads are refused.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerWorkload>,
    ) -> Result<Caller, AuthError> {
        let mut caller = if let Scheme::X509Svid = self.scheme {
            let PeerWorkload(workload) = peer.ok_or(AuthError::NoCertificate)?;
            // The workload acts for the users it names, as a service key with `any_user`.
            Caller {
                name: workload.as_str().to_owned(),
                user_id: None,
                subject_token: None,
                permissions: Permissions::default(),
                workload: Some(workload.clone()),
                actor_token: None,
            }
        } else {
            self.authenticate_bearer(headers).await?
        };
        if let Some(PeerWorkload(proved)) = peer {
            prove(&mut caller, proved, "the client certificate")?;
        }
        if let Some(verifier) = &self.workload_tokens
            && let Some(token) = headers.get(WORKLOAD_TOKEN_HEADER)
        {
            let token = token
                .to_str()
                .map_err(|_| AuthError::BadWorkloadToken("it is not a JWT".into()))?;
            let workload = verifier.verify(token).await.map_err(|err| match err {
                AuthError::BadToken(reason) => AuthError::BadWorkloadToken(reason),
                other => other,
            })?;
            if let Some(proved) = &workload.workload {
                prove(&mut caller, proved, "the workload token")?;
            }
            caller.actor_token = workload.actor_token;
        }
        Ok(caller)
    }

    async fn authenticate_bearer(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        match &self.scheme {
            Scheme::None => Ok(Caller {
                name: "anonymous".into(),
                user_id: None,
                subject_token: None,
                permissions: Permissions::default(),
                workload: None,
                actor_token: None,
            }),
            Scheme::ApiKeys(keys) => {
                let presented = bearer(headers)
                    .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
                    .ok_or(AuthError::Missing)?;
                let presented = digest(presented.as_bytes());
                // Compare against every key, in constant time each, so that timing says nothing
                // about which key came close.
                let mut found = None;
                for key in keys {
                    if bool::from(key.digest.ct_eq(&presented)) {
                        found = Some(key);
                    }
                }
                let key = found.ok_or(AuthError::BadKey)?;
                Ok(Caller {
                    name: key.name.clone(),
                    user_id: key.user_id.clone(),
                    subject_token: None,
                    permissions: key.permissions,
                    workload: key.workload.clone(),
                    actor_token: None,
                })
            }
            Scheme::Jwt(verifier) => {
                let token = bearer(headers).ok_or(AuthError::Missing)?;
                verifier.verify(token).await
            }
            Scheme::X509Svid => Err(AuthError::NoCertificate),
        }
    }
}

/// `proved` (by `proof`) is the caller's workload; a caller whose credential stands for another
/// is refused.
fn prove(
    caller: &mut Caller,
    proved: &agent_identity::SpiffeId,
    proof: &'static str,
) -> Result<(), AuthError> {
    match &caller.workload {
        Some(claimed) if claimed != proved => Err(AuthError::WorkloadConflict {
            proof,
            proved: proved.as_str().to_owned(),
            claimed: claimed.as_str().to_owned(),
        }),
        _ => {
            caller.workload = Some(proved.clone());
            Ok(())
        }
    }
}

/// The token of `Authorization: Bearer <token>`, or of GitHub's `token <token>` scheme: an
/// agent's GitHub SDK sends its configured token that way, and through the proxy that token is
/// the agent's key to this server (the proxy removes it before the upstream).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let known = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    (known && !token.trim().is_empty()).then(|| token.trim())
}

/// The middleware that authenticates every request of the routes it wraps, and puts the
/// [`Caller`] in the request's extensions.
pub async fn authenticate(
    State(authenticator): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<PeerWorkload>();
    match authenticator.authenticate(request.headers(), peer).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => {
            tracing::info!(target: "agent_identity::auth", reason = %err, "caller refused");
            err.response()
        }
    }
}

/// Where the JWKS comes from.
#[derive(Debug)]
enum JwksSource {
    File(std::path::PathBuf),
    Url {
        url: reqwest::Url,
        client: Box<HttpClient>,
    },
}

/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// The longest pause after failed fetches.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// When the JWKS was last fetched, and how many fetches in a row have failed since.
#[derive(Debug)]
struct Fetches {
    last: Instant,
    failures: u32,
}

impl Fetches {
    /// The pause before the next fetch caused by an unknown key id: the configured minimum
    /// after a success; after failures, 1 s doubling with each (at most five minutes), so
    /// that an issuer that is down is not hammered by every token that names a new key.
    fn pause(&self, minimum: Duration) -> Duration {
        if self.failures == 0 {
            return minimum;
        }
        let backoff = Duration::from_secs(1u64 << self.failures.saturating_sub(1).min(9));
        backoff.min(MAX_BACKOFF).max(minimum)
    }
}

/// Verifies bearer JWTs: signature by a key of the issuer's JWKS, algorithm in the allowed list,
/// `iss`, `aud`, `exp` (and `nbf` when present) with leeway, and a non-empty user claim.
pub struct JwtVerifier {
    settings: JwtSettings,
    algorithms: Vec<Algorithm>,
    source: JwksSource,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Held across a fetch: one fetch at a time, and callers queued behind it see its result.
    fetches: tokio::sync::Mutex<Fetches>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.settings.issuer)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    async fn new(settings: JwtSettings) -> Result<Self, String> {
        let algorithms = parse_algorithms(&settings.algorithms)?;
        let source = match (&settings.jwks_url, &settings.jwks_file) {
            (Some(url), _) => {
                let url = check_jwks_url(url, settings.allow_http_loopback)?;
                let client = HttpClient::new(jwks_policy(settings.allow_http_loopback))
                    .map(Box::new)
                    .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
                JwksSource::Url { url, client }
            }
            (None, Some(file)) => JwksSource::File(file.clone()),
            (None, None) => return Err("no JWKS source".into()),
        };
        let verifier = Self {
            settings,
            algorithms,
            source,
            keys: RwLock::new(HashMap::new()),
            fetches: tokio::sync::Mutex::new(Fetches {
                last: Instant::now(),
                failures: 0,
            }),
        };
        let keys = verifier.fetch().await?;
        *verifier
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(verifier)
    }

    /// Keeps the keys fresh; run in the background.
    pub async fn refresh_periodically(self: Arc<Self>) {
        let period = Duration::from_secs(self.settings.jwks_refresh_secs.max(30));
        loop {
            tokio::time::sleep(period).await;
            self.refetch().await;
        }
    }

    async fn refetch(&self) {
        let mut fetches = self.fetches.lock().await;
        self.refetch_holding(&mut fetches).await;
    }

    /// Fetches the keys, with the fetch lock held.
    async fn refetch_holding(&self, fetches: &mut Fetches) {
        fetches.last = Instant::now();
        match self.fetch().await {
            Ok(keys) => {
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
                fetches.failures = 0;
            }
            // Keep the keys we have: an issuer briefly down must not lock every caller out.
            Err(err) => {
                fetches.failures = fetches.failures.saturating_add(1);
                tracing::warn!(target: "agent_identity::auth", error = %err, failures = fetches.failures, "JWKS refresh failed")
            }
        }
    }

    /// The key `kid` names, fetching the JWKS again when it is unknown: one fetch at a time
    /// (callers queue behind it and use its result), and none within the pause of the last.
    async fn key_or_refetch(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.key(kid) {
            return Some(key);
        }
        let mut fetches = self.fetches.lock().await;
        // A fetch that ran while this caller waited may have brought the key.
        if let Some(key) = self.key(kid) {
            return Some(key);
        }
        let minimum = Duration::from_secs(self.settings.jwks_min_refetch_secs);
        if fetches.last.elapsed() >= fetches.pause(minimum) {
            self.refetch_holding(&mut fetches).await;
        }
        drop(fetches);
        self.key(kid)
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let bytes = match &self.source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?,
            JwksSource::Url { url, client } => {
                let answer = client
                    .get_json(url, "jwks")
                    .await
                    .map_err(|err| format!("cannot fetch the JWKS: {err}"))?;
                if answer.status != 200 {
                    return Err(format!("the JWKS endpoint answered {}", answer.status));
                }
                answer.body
            }
        };
        let set: JwkSet = serde_json::from_slice(&bytes)
            .map_err(|err| format!("the JWKS is not valid: {err}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // Keys this verifier cannot use (an HMAC `oct` key, an unknown curve) are skipped.
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
            }
        }
        if keys.is_empty() {
            return Err("the JWKS holds no usable key".into());
        }
        Ok(keys)
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(kid).cloned().or_else(|| {
            // A token without `kid` may use the only key there is.
            (kid.is_empty() && keys.len() == 1)
                .then(|| keys.values().next().cloned())
                .flatten()
        })
    }

    async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::BadToken("it is not a well-formed JWT".into()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::BadToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.unwrap_or_default();
        let key = self
            .key_or_refetch(&kid)
            .await
            .ok_or_else(|| AuthError::BadToken("it is signed by an unknown key".into()))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_audience(&self.settings.audience);
        if self.settings.issuer.is_empty() {
            // A JWT-SVID need not name an issuer; its trust domain is checked on `sub` below.
            validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        } else {
            validation.set_issuer(&[&self.settings.issuer]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        }
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|err| AuthError::BadToken(token_problem(&err)))?
        .claims;
        let permissions = [
            (
                &self.settings.receive_secrets_scope,
                Permission::ReceiveSecrets,
            ),
            (&self.settings.approve_scope, Permission::Approve),
            (&self.settings.break_glass_scope, Permission::BreakGlass),
            (&self.settings.reload_scope, Permission::Reload),
            (&self.settings.revoke_scope, Permission::Revoke),
        ]
        .into_iter()
        .filter(|(scope, _)| {
            scope
                .as_deref()
                .is_some_and(|scope| has_scope(&claims, scope))
        })
        .map(|(_, permission)| permission)
        .collect();
        if let Some(domain) = &self.settings.trust_domain {
            // A JWT-SVID: the subject is the calling workload, in the configured trust domain.
            let workload = claims
                .get("sub")
                .and_then(|v| v.as_str())
                .and_then(|sub| agent_identity::SpiffeId::parse(sub).ok())
                .filter(|id| id.trust_domain() == domain)
                .ok_or_else(|| {
                    AuthError::BadToken(format!(
                        "its `sub` is not a SPIFFE ID in trust domain `{domain}`"
                    ))
                })?;
            // The SVID names the agent, not a user: it is no subject token for an exchange.
            return Ok(Caller {
                name: workload.as_str().to_owned(),
                user_id: None,
                subject_token: None,
                permissions,
                workload: Some(workload),
                // The agent's own token: the actor when it acts for a user (RFC 8693 §4.1).
                actor_token: Some(SubjectToken::new(Secret::new(token))),
            });
        }
        let user = claims
            .get(&self.settings.user_claim)
            .and_then(|v| v.as_str())
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                AuthError::BadToken(format!("claim `{}` is missing", self.settings.user_claim))
            })?;
        Ok(Caller {
            name: user.to_owned(),
            user_id: Some(user.to_owned()),
            subject_token: Some(SubjectToken::new(Secret::new(token))),
            permissions,
            workload: None,
            actor_token: None,
        })
    }
}

/// True when the token grants `wanted`: in `scope` (space-separated, RFC 8693 and RFC 9068) or
/// in `scp` (a list, or a string as some issuers write it).
fn has_scope(claims: &serde_json::Map<String, serde_json::Value>, wanted: &str) -> bool {
    let in_text = |value: &serde_json::Value| {
        value
            .as_str()
            .is_some_and(|text| text.split_ascii_whitespace().any(|scope| scope == wanted))
    };
    claims.get("scope").is_some_and(in_text)
        || claims.get("scp").is_some_and(|scp| match scp {
            serde_json::Value::Array(items) => {
                items.iter().any(|item| item.as_str() == Some(wanted))
            }
            other => in_text(other),
        })
}

fn token_problem(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet".into(),
        ErrorKind::InvalidSignature => "its signature does not verify".into(),
        ErrorKind::InvalidIssuer => "its issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "its audience is not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("claim `{claim}` is missing"),
        ErrorKind::InvalidAlgorithm => "its algorithm does not match the key".into(),
        _ => "it cannot be verified".into(),
    }
}
