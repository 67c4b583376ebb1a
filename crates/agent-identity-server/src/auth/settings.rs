//! The `[auth]` section: how callers authenticate, checked.

use std::path::{Path, PathBuf};

use agent_identity::ConfigError;
use serde::Deserialize;

use super::{Permission, Permissions};

/// The `[auth]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSection {
    #[serde(default)]
    mode: AuthMode,
    #[serde(default)]
    api_keys: Vec<ApiKeySection>,
    jwt: Option<JwtSettings>,
    /// `[auth.workload_jwt]`: JWT-SVIDs in `X-Agent-Identity-Workload-Token`, beside the
    /// mode's own credential.
    workload_jwt: Option<JwtSettings>,
}

/// How callers authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Nobody does (loopback only, unless allowed explicitly).
    #[default]
    None,
    /// With an API key (`Authorization: Bearer <key>` or `X-API-Key`).
    ApiKey,
    /// With a bearer JWT checked against a JWKS; its subject is the user.
    Jwt,
    /// With a JWT-SVID: a bearer JWT whose subject is the calling workload's SPIFFE ID, in the
    /// configured trust domain, checked against that domain's JWKS bundle.
    JwtSvid,
    /// With an X.509-SVID: the client certificate of the TLS handshake, checked against its
    /// trust domain's bundle (`[server.tls.client_auth]`), names the calling workload.
    X509Svid,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeySection {
    name: String,
    /// Hex SHA-256 of the key.
    sha256: Option<String>,
    /// Or: the environment variable holding the key (hashed at load).
    env: Option<String>,
    /// The user this key may act for.
    user_id: Option<String>,
    /// A key with no `user_id` may act for any user only when this says so (a service key).
    #[serde(default)]
    any_user: bool,
    /// The workload the key stands for (a SPIFFE ID): a body's `spiffeId` must be this one.
    spiffe_id: Option<String>,
    /// What the key may do beyond resolving (`receive-secrets`, `approve`, `break-glass`).
    #[serde(default)]
    permissions: Vec<Permission>,
}

/// Caller authentication, checked: the mode's credential, and optionally the workload's own
/// JWT-SVID beside it.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How callers authenticate.
    pub callers: Callers,
    /// How a workload token beside the caller's credential is verified (a JWT-SVID in
    /// `X-Agent-Identity-Workload-Token`): it proves the workload, and is the actor token of
    /// delegation.
    pub workload_tokens: Option<JwtSettings>,
}

/// How callers authenticate, checked.
#[derive(Debug, Clone)]
pub enum Callers {
    /// No authentication.
    None,
    /// API keys, by digest.
    ApiKeys(Vec<ApiKey>),
    /// Bearer JWTs.
    Jwt(Box<JwtSettings>),
    /// Client certificates (the TLS section says which trust domains).
    X509Svid,
}

/// One API key, kept only as its SHA-256 digest.
#[derive(Clone)]
pub struct ApiKey {
    /// The key's name, for logs.
    pub name: String,
    /// SHA-256 of the key.
    pub digest: [u8; 32],
    /// The user it may act for, if bound to one (a key bound to none was configured with
    /// `any_user = true`).
    pub user_id: Option<String>,
    /// The workload it stands for, if any.
    pub workload: Option<agent_identity::SpiffeId>,
    /// What it may do beyond resolving.
    pub permissions: Permissions,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("user_id", &self.user_id)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

/// The `[auth.jwt]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// The required `iss` (mode `jwt`; optional for `jwt-svid`, whose tokens need not carry one).
    #[serde(default)]
    pub issuer: String,
    /// Mode `jwt-svid`: the trust domain whose workloads may call (`prod.example`); a token's
    /// `sub` must be a SPIFFE ID in it.
    pub trust_domain: Option<String>,
    /// Accepted `aud` values (one must be present).
    pub audience: Vec<String>,
    /// Accepted algorithms (`RS256`, `ES256`, `EdDSA`, ...). `none` and HMAC are refused.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Where the issuer publishes its keys (HTTPS).
    pub jwks_url: Option<String>,
    /// Or: a JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// Allow a plain-HTTP `jwks_url` on a loopback address (tests, local issuers).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// Clock leeway for `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// The claim that names the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// How often to fetch the JWKS again, in seconds.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// The least time between two fetches caused by tokens naming an unknown `kid`, in seconds
    /// (30). After failed fetches the pause grows (1 s, doubling, at most five minutes).
    #[serde(default = "default_jwks_min_refetch")]
    pub jwks_min_refetch_secs: u64,
    /// The scope (in the token's `scope` or `scp` claim) that grants `receive-secrets`; no token
    /// may receive secrets when absent.
    pub receive_secrets_scope: Option<String>,
    /// The scope that grants `approve` (the approver role); no token may approve when absent.
    pub approve_scope: Option<String>,
    /// The scope that grants `break-glass`; no token may break glass when absent.
    pub break_glass_scope: Option<String>,
    /// The scope that grants `reload` (`POST /api/reload`); no token may reload when absent.
    pub reload_scope: Option<String>,
    /// The scope that grants `revoke` (`POST /api/revocations`); no token may revoke when
    /// absent.
    pub revoke_scope: Option<String>,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256", "EdDSA"].map(str::to_owned).to_vec()
}

fn default_leeway() -> u64 {
    30
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_jwks_refresh() -> u64 {
    300
}

fn default_jwks_min_refetch() -> u64 {
    30
}

pub(crate) fn auth_settings(
    mut section: AuthSection,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthSettings, Vec<ConfigError>> {
    let mode = section.mode;
    let workload_jwt = section.workload_jwt.take();
    let callers = callers(section, base, env);
    let workload_tokens = workload_jwt
        .map(|jwt| {
            if matches!(mode, AuthMode::None | AuthMode::JwtSvid) {
                return Err(vec![ConfigError::new(
                    "auth",
                    Some("workload_jwt"),
                    "needs mode `api-key`, `jwt` or `x509-svid`: with mode `none` nobody is authenticated, and with `jwt-svid` the bearer token is the workload's already",
                )]);
            }
            jwt_settings(jwt, true, base, "workload_jwt")
        })
        .transpose();
    match (callers, workload_tokens) {
        (Ok(callers), Ok(workload_tokens)) => Ok(AuthSettings {
            callers,
            workload_tokens,
        }),
        (Err(mut errors), Err(more)) => {
            errors.extend(more);
            Err(errors)
        }
        (Err(errors), _) | (_, Err(errors)) => Err(errors),
    }
}

fn callers(
    section: AuthSection,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Callers, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let located = |field: &str, problem: &str| ConfigError::new("auth", Some(field), problem);
    match section.mode {
        AuthMode::None | AuthMode::X509Svid => {
            if !section.api_keys.is_empty() || section.jwt.is_some() {
                let mode = if section.mode == AuthMode::None {
                    "none"
                } else {
                    "x509-svid"
                };
                errors.push(located(
                    "mode",
                    &format!(
                        "is `{mode}`, which takes no keys or JWT section, but some are configured; set the mode you mean"
                    ),
                ));
            }
            if errors.is_empty() && section.mode == AuthMode::X509Svid {
                Ok(Callers::X509Svid)
            } else if errors.is_empty() {
                Ok(Callers::None)
            } else {
                Err(errors)
            }
        }
        AuthMode::ApiKey => {
            if section.api_keys.is_empty() {
                errors.push(located(
                    "api_keys",
                    "is empty; mode `api-key` needs at least one key",
                ));
            }
            let mut keys = Vec::new();
            for (index, key) in section.api_keys.into_iter().enumerate() {
                let field = format!("api_keys[{index}]");
                let digest = match (&key.sha256, &key.env) {
                    (Some(hex_digest), None) => {
                        let mut digest = [0u8; 32];
                        match hex::decode_to_slice(hex_digest.trim(), &mut digest) {
                            Ok(()) => Some(digest),
                            Err(_) => {
                                errors.push(located(
                                    &field,
                                    "`sha256` is not 64 hexadecimal characters",
                                ));
                                None
                            }
                        }
                    }
                    (None, Some(var)) => match env(var) {
                        Some(value) if value.len() >= 16 => {
                            Some(crate::auth::digest(value.as_bytes()))
                        }
                        Some(_) => {
                            errors.push(located(
                                &field,
                                &format!("the key in `{var}` is shorter than 16 characters"),
                            ));
                            None
                        }
                        None => {
                            errors.push(located(
                                &field,
                                &format!("environment variable `{var}` is not set"),
                            ));
                            None
                        }
                    },
                    _ => {
                        errors.push(located(&field, "needs exactly one of `sha256` and `env`"));
                        None
                    }
                };
                match (&key.user_id, key.any_user) {
                    (None, false) => errors.push(located(
                        &field,
                        "binds no user: set `user_id`, or `any_user = true` for a service key that may act for any user",
                    )),
                    (Some(_), true) => errors.push(located(
                        &field,
                        "has both `user_id` and `any_user = true`; keep the one you mean",
                    )),
                    _ => {}
                }
                let workload = match key
                    .spiffe_id
                    .as_deref()
                    .map(agent_identity::SpiffeId::parse)
                {
                    None => None,
                    Some(Ok(id)) => Some(id),
                    Some(Err(problem)) => {
                        errors.push(located(
                            &field,
                            &format!("`spiffe_id` is not a SPIFFE ID: it {problem}"),
                        ));
                        None
                    }
                };
                if let Some(digest) = digest {
                    keys.push(ApiKey {
                        workload,
                        name: key.name,
                        digest,
                        user_id: key.user_id,
                        permissions: key.permissions.into_iter().collect(),
                    });
                }
            }
            if errors.is_empty() {
                Ok(Callers::ApiKeys(keys))
            } else {
                Err(errors)
            }
        }
        AuthMode::Jwt | AuthMode::JwtSvid => {
            let Some(jwt) = section.jwt else {
                return Err(vec![located(
                    "jwt",
                    "is missing; modes `jwt` and `jwt-svid` need an [auth.jwt] section",
                )]);
            };
            jwt_settings(jwt, section.mode == AuthMode::JwtSvid, base, "jwt")
                .map(|jwt| Callers::Jwt(Box::new(jwt)))
        }
    }
}

/// Checks a JWT section: `[auth.jwt]` (`svid` for mode `jwt-svid`) or `[auth.workload_jwt]`
/// (always JWT-SVIDs). Problems are placed at `section`'s fields.
fn jwt_settings(
    mut jwt: JwtSettings,
    svid: bool,
    base: &Path,
    section: &str,
) -> Result<JwtSettings, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let located = |field: &str, problem: &str| {
        ConfigError::new("auth", Some(&format!("{section}.{field}")), problem)
    };
    match (svid, jwt.trust_domain.as_deref()) {
        (false, None) => {
            if jwt.issuer.trim().is_empty() {
                errors.push(located("issuer", "is empty"));
            }
        }
        (false, Some(_)) => errors.push(located(
            "trust_domain",
            "is for mode `jwt-svid`; mode `jwt` authenticates users",
        )),
        (true, None) => errors.push(located(
            "trust_domain",
            "is missing; mode `jwt-svid` needs the trust domain of its callers",
        )),
        (true, Some(domain)) => {
            let whole = agent_identity::SpiffeId::parse(&format!("spiffe://{domain}"));
            if !whole.is_ok_and(|id| id.path().is_empty()) {
                errors.push(located(
                    "trust_domain",
                    "is not a trust domain (lower-case letters, digits, `.`, `-`, `_`)",
                ));
            }
        }
    }
    if jwt.audience.is_empty() {
        errors.push(located(
            "audience",
            "is empty; name the audience tokens must carry",
        ));
    }
    for (field, scope) in [
        ("receive_secrets_scope", &jwt.receive_secrets_scope),
        ("approve_scope", &jwt.approve_scope),
        ("break_glass_scope", &jwt.break_glass_scope),
        ("reload_scope", &jwt.reload_scope),
        ("revoke_scope", &jwt.revoke_scope),
    ] {
        if scope
            .as_deref()
            .is_some_and(|scope| scope.trim().is_empty() || scope.contains(' '))
        {
            errors.push(located(field, "must be one scope: not empty, no spaces"));
        }
    }
    if let Err(problem) = crate::auth::parse_algorithms(&jwt.algorithms) {
        errors.push(located("algorithms", &problem));
    }
    match (&jwt.jwks_url, &jwt.jwks_file) {
        (Some(url), None) => {
            if let Err(problem) = crate::auth::check_jwks_url(url, jwt.allow_http_loopback) {
                errors.push(located("jwks_url", &problem));
            }
        }
        (None, Some(file)) => jwt.jwks_file = Some(base.join(file)),
        _ => errors.push(ConfigError::new(
            "auth",
            Some(section),
            "needs exactly one of `jwks_url` and `jwks_file`",
        )),
    }
    if errors.is_empty() {
        Ok(jwt)
    } else {
        Err(errors)
    }
}
