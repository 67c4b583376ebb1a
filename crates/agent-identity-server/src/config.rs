//! The sidecar's configuration: one TOML file, or the reference's environment variables.
//!
//! ```toml
//! rules_file = "rules.json"          # the reference's JSON, or [[rules]] tables inline
//!
//! [server]
//! listen = "127.0.0.1:3001"
//!
//! [stores.default]
//! type = "memory"
//! credentials_file = "credentials.json"
//! secrets = { "openai-prod" = { env = "OPENAI_API_KEY" } }
//!
//! [auth]
//! mode = "none"                      # or "api-key", "jwt"
//! ```
//!
//! Relative paths are relative to the configuration file. Secrets never appear in the file:
//! they are named by environment variable, or stored as a SHA-256 digest (API keys).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity::identity_cache::{CacheConfig, CachedStore};
use agent_identity::{
    ConfigError, Credential, CredentialRef, CredentialWriter, MemoryCredentialStore,
    ResolutionObserver, Router, RoutingRule, Secret, parse_credentials_json, parse_rules_json,
};
use serde::Deserialize;

/// Everything the sidecar needs, checked.
#[derive(Debug)]
pub struct Loaded {
    /// The router, with its stores.
    pub router: Router,
    /// Listener, limits and logging.
    pub server: ServerSettings,
    /// Caller authentication.
    pub auth: AuthSettings,
    /// Credentials loaded into memory stores, by store name (for `check`).
    pub memory_credentials: BTreeMap<String, Vec<Credential>>,
    /// The stores whose writes persist (Vault, AWS), by name (for `import`).
    pub writers: BTreeMap<String, Arc<dyn CredentialWriter>>,
    /// The OAuth connect endpoints, when a store of `type = "oauth"` is configured.
    pub oauth: Option<Arc<crate::oauth::OAuthEndpoints>>,
    /// Where the configuration came from, for logs.
    pub source: String,
}

/// A configuration that cannot be used. Every problem is listed.
#[derive(Debug, thiserror::Error)]
#[error("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    /// Every problem found.
    pub errors: Vec<ConfigError>,
}

impl From<ConfigError> for LoadError {
    fn from(error: ConfigError) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The `[server]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to bind (`127.0.0.1:3001`).
    pub listen: SocketAddr,
    /// Allow a non-loopback bind with no caller authentication. Off by default: anyone who
    /// reaches the port could resolve as any user.
    pub allow_unauthenticated: bool,
    /// `Host` values accepted besides the loopback names with the bound port (DNS rebinding
    /// defence). On a non-loopback bind with this list empty, any `Host` is accepted.
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted; a request with any other `Origin` is refused before its body is
    /// read. Requests without `Origin` (not from a browser) are accepted.
    pub allowed_origins: Vec<String>,
    /// Largest request body, in bytes (413 above).
    pub body_limit_bytes: usize,
    /// Longest a request may take, in milliseconds (408 after).
    pub request_timeout_ms: u64,
    /// Longest a client may take to send its request headers, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Most open connections; more are answered 429 and closed.
    pub max_connections: usize,
    /// Most requests in flight; more are answered 429.
    pub max_in_flight: usize,
    /// How long in-flight requests may take to finish on shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// How often the stores' health is checked, in milliseconds.
    pub health_interval_ms: u64,
    /// Log format.
    pub log_format: LogFormat,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3001),
            allow_unauthenticated: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 5_000,
            max_connections: 1024,
            max_in_flight: 512,
            shutdown_grace_ms: 30_000,
            health_interval_ms: 5_000,
            log_format: LogFormat::Text,
        }
    }
}

impl ServerSettings {
    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// The `[router]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RouterSection {
    fall_through: bool,
    clock_skew_secs: u64,
}

impl Default for RouterSection {
    fn default() -> Self {
        Self {
            fall_through: false,
            clock_skew_secs: agent_identity::DEFAULT_CLOCK_SKEW.as_secs(),
        }
    }
}

/// A `[stores.<name>]` section.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum StoreSection {
    Memory(MemoryStoreSection),
    TokenExchange(TokenExchangeSection),
    Vault(Box<VaultSection>),
    Aws(AwsSection),
    Dcr(DcrSection),
    Oauth(OAuthSection),
}

/// A `[stores.<name>]` of `type = "oauth"`: users' own accounts (GitHub, Google, any OpenID
/// provider, a DCR client, Kaggle-style API tokens), connected through the sidecar's `/oauth/`
/// endpoints; each provider's slot yields the requesting user's token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OAuthSection {
    /// The address users' browsers reach this sidecar at: callbacks are
    /// `<public_url>/oauth/<provider>/callback`.
    public_url: String,
    /// Where browsers go after a callback, with `provider`, `status` (and `error`) added.
    return_url: Option<String>,
    /// Allow plain http to loopback servers (local providers, tests).
    #[serde(default)]
    allow_http_loopback: bool,
    /// Allow private and link-local addresses (a provider inside the network).
    #[serde(default)]
    allow_private: bool,
    #[serde(default = "default_dcr_timeout")]
    timeout_ms: u64,
    /// Refresh access tokens expiring within this many seconds.
    #[serde(default = "default_refresh_window")]
    refresh_window_secs: u64,
    /// Where connections are kept (relative to the configuration file); in memory when absent.
    connections_file: Option<PathBuf>,
    /// Or: the `vault` store whose KV mount keeps them, shared by every replica.
    connections_vault: Option<String>,
    /// Where in that mount.
    #[serde(default = "default_connections_vault_prefix")]
    connections_vault_prefix: String,
    /// The environment variable holding the current key (32 bytes, base64) that seals the
    /// connections file and the flow cookies, and the id it is recorded under.
    connections_key_env: Option<String>,
    #[serde(default = "default_clients_key_id")]
    connections_key_id: String,
    /// Older keys still accepted, by id: the environment variables holding them.
    #[serde(default)]
    connections_old_keys: BTreeMap<String, String>,
    /// Where clients registered for `preset = "dcr"` providers are kept (sealed with the same
    /// key); in memory when absent.
    clients_file: Option<PathBuf>,
    providers: BTreeMap<String, ProviderSection>,
}

fn default_connections_vault_prefix() -> String {
    "agent-identity-connections".into()
}

fn default_refresh_window() -> u64 {
    60
}

/// Which preset a provider follows.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Preset {
    Github,
    Google,
    Openid,
    Dcr,
    Kaggle,
    ApiToken,
}

/// One `[stores.<name>.providers.<provider>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSection {
    preset: Preset,
    /// The ref whose credential is the requesting user's token.
    #[serde(rename = "ref")]
    reference: String,
    client_id: Option<String>,
    /// The environment variable holding the client secret.
    client_secret_env: Option<String>,
    /// The issuer (`openid`, `dcr`).
    issuer: Option<String>,
    /// An RFC 8707 resource; for `dcr`, the protected resource whose metadata names the issuer.
    resource: Option<String>,
    /// Scopes, replacing the preset's.
    scopes: Option<Vec<String>>,
    prompt: Option<String>,
    /// More authorization parameters.
    #[serde(default)]
    extra: BTreeMap<String, String>,
    /// Where users make an API token (`api-token`).
    token_page: Option<String>,
    /// The environment variable holding an initial access token for registration (`dcr`).
    initial_access_token_env: Option<String>,
}

/// A `[stores.<name>]` of `type = "dcr"`: slots whose credential is an access token obtained
/// with `client_credentials` by a client registered at run time (RFC 7591).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DcrSection {
    /// Allow plain http to loopback authorization servers (local servers, tests).
    #[serde(default)]
    allow_http_loopback: bool,
    /// Allow private and link-local addresses (an authorization server inside the network).
    #[serde(default)]
    allow_private: bool,
    #[serde(default = "default_dcr_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_dcr_max_body")]
    max_body_bytes: usize,
    /// Where registered clients are kept (relative to the configuration file); in memory when
    /// absent, so a restart registers again.
    clients_file: Option<PathBuf>,
    /// The environment variable holding the current key of the clients file (32 bytes,
    /// base64), and the id it is recorded under.
    clients_key_env: Option<String>,
    #[serde(default = "default_clients_key_id")]
    clients_key_id: String,
    /// Older keys still accepted, by id: the environment variables holding them.
    #[serde(default)]
    clients_old_keys: BTreeMap<String, String>,
    slots: Vec<DcrSlotSection>,
}

fn default_clients_key_id() -> String {
    "default".into()
}

fn default_dcr_timeout() -> u64 {
    10_000
}

fn default_dcr_max_body() -> usize {
    1024 * 1024
}

/// One `[[stores.<name>.slots]]` of a DCR store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DcrSlotSection {
    #[serde(rename = "ref")]
    reference: String,
    /// The authorization server's issuer, or:
    issuer: Option<String>,
    /// the protected resource whose RFC 9728 metadata names it.
    resource: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// The client name registered (`agent-identity`).
    client_name: Option<String>,
    /// The client profile (one registration per issuer and profile); the ref by default.
    profile: Option<String>,
    /// The environment variable holding an initial access token, for servers that demand one.
    initial_access_token_env: Option<String>,
}

/// A `[stores.<name>]` of `type = "aws"`: credentials in AWS Secrets Manager. AWS credentials
/// come from the SDK's default chain (environment, profile, web identity, instance role).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsSection {
    /// The region; without it, the SDK's region chain (`AWS_REGION`, profile, ...).
    region: Option<String>,
    /// Another endpoint than AWS's (a VPC endpoint, an emulator).
    endpoint: Option<String>,
    #[serde(default = "default_aws_prefix")]
    prefix: String,
    #[serde(default = "default_aws_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_aws_attempts")]
    attempts: u32,
    #[serde(default = "default_vault_cache_ttl")]
    cache_ttl_secs: u64,
    #[serde(default = "default_vault_cache_capacity")]
    cache_capacity: u64,
    #[serde(default = "default_aws_recovery_window")]
    recovery_window_days: i64,
}

fn default_aws_prefix() -> String {
    agent_identity::identity_aws::DEFAULT_PREFIX.into()
}

fn default_aws_timeout() -> u64 {
    5_000
}

fn default_aws_attempts() -> u32 {
    3
}

fn default_aws_recovery_window() -> i64 {
    30
}

/// A `[stores.<name>]` of `type = "vault"`: credentials in a Vault (or OpenBao) KV v2 engine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultSection {
    /// The address, or:
    address: Option<String>,
    /// the environment variable holding it (`VAULT_ADDR`).
    address_env: Option<String>,
    #[serde(default = "default_vault_mount")]
    mount: String,
    #[serde(default = "default_vault_prefix")]
    prefix: String,
    lease_prefix: Option<String>,
    namespace: Option<String>,
    /// A PEM bundle of CAs to trust, relative to the configuration file.
    ca_bundle: Option<PathBuf>,
    /// A client certificate and its key (PEM), for mutual TLS.
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    #[serde(default = "default_vault_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_vault_cache_ttl")]
    cache_ttl_secs: u64,
    #[serde(default = "default_vault_cache_capacity")]
    cache_capacity: u64,
    #[serde(default = "default_vault_list_concurrency")]
    list_concurrency: usize,
    auth: VaultAuthSection,
}

fn default_vault_mount() -> String {
    agent_identity::identity_vault::DEFAULT_MOUNT.into()
}

fn default_vault_prefix() -> String {
    agent_identity::identity_vault::DEFAULT_PREFIX.into()
}

fn default_vault_timeout() -> u64 {
    5_000
}

fn default_vault_cache_ttl() -> u64 {
    30
}

fn default_vault_cache_capacity() -> u64 {
    10_000
}

fn default_vault_list_concurrency() -> usize {
    16
}

/// `[stores.<name>.auth]` of a Vault store. Secrets are named by environment variable.
#[derive(Debug, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
enum VaultAuthSection {
    /// A fixed token.
    Token {
        #[serde(default = "default_vault_token_env")]
        token_env: String,
    },
    /// AppRole.
    Approle {
        #[serde(default = "default_approle_mount")]
        mount: String,
        /// The role id, or:
        role_id: Option<String>,
        /// the environment variable holding it.
        role_id_env: Option<String>,
        #[serde(default = "default_secret_id_env")]
        secret_id_env: String,
    },
    /// Kubernetes.
    Kubernetes {
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
        role: String,
        jwt_path: Option<PathBuf>,
    },
}

fn default_vault_token_env() -> String {
    "VAULT_TOKEN".into()
}

fn default_approle_mount() -> String {
    "approle".into()
}

fn default_secret_id_env() -> String {
    "VAULT_SECRET_ID".into()
}

fn default_kubernetes_mount() -> String {
    "kubernetes".into()
}

/// A `[stores.<name>]` of `type = "token-exchange"`: slots whose credential is the caller's
/// token exchanged at an authorization server (RFC 8693).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenExchangeSection {
    /// Tokens leave the cache this long before they expire.
    #[serde(default = "default_exchange_skew")]
    skew_secs: u64,
    /// The longest one call to a token endpoint may take.
    #[serde(default = "default_exchange_timeout")]
    timeout_ms: u64,
    /// How many times one exchange is tried at most.
    #[serde(default = "default_exchange_attempts")]
    attempts: u32,
    slots: Vec<ExchangeSlot>,
}

fn default_exchange_skew() -> u64 {
    30
}

fn default_exchange_timeout() -> u64 {
    10_000
}

fn default_exchange_attempts() -> u32 {
    3
}

/// One `[[stores.<name>.slots]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeSlot {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    provider: Option<String>,
    kind: Option<agent_identity::CredentialKind>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// The token endpoint, or:
    token_endpoint: Option<String>,
    /// the issuer whose metadata names it.
    issuer: Option<String>,
    #[serde(default)]
    allow_http_loopback: bool,
    client_id: String,
    /// The environment variable holding the client secret.
    client_secret_env: Option<String>,
    /// The environment variable holding a subject token for requests that carry none.
    subject_token_env: Option<String>,
    /// The environment variable holding the actor token (delegation).
    actor_token_env: Option<String>,
    #[serde(default)]
    client_auth: ExchangeClientAuth,
    #[serde(default)]
    audience: Vec<String>,
    #[serde(default)]
    resource: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    subject_token_type: Option<String>,
    requested_token_type: Option<String>,
    #[serde(default)]
    extra_params: BTreeMap<String, String>,
    default_lifetime_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ExchangeClientAuth {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryStoreSection {
    /// The reference's credentials JSON.
    credentials_file: Option<PathBuf>,
    /// Credentials inline, in the same camelCase shape.
    #[serde(default)]
    credentials: Vec<Credential>,
    /// Secret material by credential ref.
    #[serde(default)]
    secrets: BTreeMap<String, SecretSource>,
}

/// Where a secret comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSource {
    /// The environment variable holding it.
    env: String,
}

/// The `[auth]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    #[serde(default)]
    mode: AuthMode,
    #[serde(default)]
    api_keys: Vec<ApiKeySection>,
    jwt: Option<JwtSettings>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeySection {
    name: String,
    /// Hex SHA-256 of the key.
    sha256: Option<String>,
    /// Or: the environment variable holding the key (hashed at load).
    env: Option<String>,
    /// The user this key may act for; any user when absent (a service key).
    user_id: Option<String>,
}

/// Caller authentication, checked.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// No authentication.
    None,
    /// API keys, by digest.
    ApiKeys(Vec<ApiKey>),
    /// Bearer JWTs.
    Jwt(JwtSettings),
}

/// One API key, kept only as its SHA-256 digest.
#[derive(Clone)]
pub struct ApiKey {
    /// The key's name, for logs.
    pub name: String,
    /// SHA-256 of the key.
    pub digest: [u8; 32],
    /// The user it may act for, if bound to one.
    pub user_id: Option<String>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// The `[auth.jwt]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// The required `iss`.
    pub issuer: String,
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
    /// How often to fetch the JWKS again, in seconds (also on an unknown `kid`, at most every 30 s).
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
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

/// The configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    rules_file: Option<PathBuf>,
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    router: RouterSection,
    #[serde(default)]
    stores: BTreeMap<String, StoreSection>,
    #[serde(default)]
    rules: Vec<RoutingRule>,
    #[serde(default)]
    auth: AuthSection,
}

/// Reads, checks and builds the configuration in `path`.
pub fn load_file(
    path: &Path,
    observer: Option<Arc<dyn ResolutionObserver>>,
) -> Result<Loaded, LoadError> {
    let location = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError::new(&location, None, format!("cannot be read: {err}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(
        &text,
        base,
        location,
        &|name| std::env::var(name).ok(),
        observer,
    )
}

/// Reads, checks and builds a configuration given as text. Relative paths in it are relative to
/// `base`; `env` looks environment variables up; `source` names the text in messages.
pub fn load_str(
    text: &str,
    base: &Path,
    source: String,
    env: &dyn Fn(&str) -> Option<String>,
    observer: Option<Arc<dyn ResolutionObserver>>,
) -> Result<Loaded, LoadError> {
    let file: ConfigFile = toml::from_str(text)
        .map_err(|err| ConfigError::new(&source, None, err.to_string().trim_end().to_owned()))?;
    build(file, base, source, env, observer)
}

/// Builds the configuration of the reference's Docker sidecar: credentials and rules from
/// `AGENT_IDENTITY_CREDENTIALS_JSON` and `AGENT_IDENTITY_RULES_JSON`, the port from `PORT`,
/// on 127.0.0.1, one memory store, no authentication.
pub fn load_env(
    env: &dyn Fn(&str) -> Option<String>,
    observer: Option<Arc<dyn ResolutionObserver>>,
) -> Result<Loaded, LoadError> {
    let mut errors = Vec::new();
    let credentials = match env("AGENT_IDENTITY_CREDENTIALS_JSON") {
        Some(json) => parse_credentials_json(&json).unwrap_or_else(|err| {
            errors.push(ConfigError::new(
                "AGENT_IDENTITY_CREDENTIALS_JSON",
                None,
                err.to_string(),
            ));
            Vec::new()
        }),
        None => Vec::new(),
    };
    let rules = match env("AGENT_IDENTITY_RULES_JSON") {
        Some(json) => parse_rules_json(&json).unwrap_or_else(|err| {
            errors.push(ConfigError::new(
                "AGENT_IDENTITY_RULES_JSON",
                None,
                err.to_string(),
            ));
            Vec::new()
        }),
        None => Vec::new(),
    };
    let mut server = ServerSettings::default();
    if let Some(port) = env("PORT") {
        match port.trim().parse::<u16>() {
            Ok(port) => server.listen.set_port(port),
            Err(_) => errors.push(ConfigError::new(
                "PORT",
                None,
                "is not a port number (0-65535)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(LoadError { errors });
    }
    let mut stores = BTreeMap::new();
    stores.insert(
        agent_identity::DEFAULT_STORE.to_owned(),
        StoreSection::Memory(MemoryStoreSection {
            credentials_file: None,
            credentials,
            secrets: BTreeMap::new(),
        }),
    );
    let file = ConfigFile {
        rules_file: None,
        server,
        router: RouterSection::default(),
        stores,
        rules,
        auth: AuthSection::default(),
    };
    build(file, Path::new("."), "environment".into(), env, observer)
}

fn build(
    file: ConfigFile,
    base: &Path,
    source: String,
    env: &dyn Fn(&str) -> Option<String>,
    observer: Option<Arc<dyn ResolutionObserver>>,
) -> Result<Loaded, LoadError> {
    let mut errors = Vec::new();
    let mut rules = file.rules;
    if let Some(rules_file) = &file.rules_file {
        let path = base.join(rules_file);
        match std::fs::read_to_string(&path) {
            Ok(json) => match parse_rules_json(&json) {
                Ok(more) => rules.extend(more),
                Err(err) => errors.push(ConfigError::new(
                    path.display().to_string(),
                    None,
                    err.to_string(),
                )),
            },
            Err(err) => errors.push(ConfigError::new(
                "rules_file",
                None,
                format!("{}: {err}", path.display()),
            )),
        }
    }

    let mut builder = Router::builder()
        .fall_through(file.router.fall_through)
        .clock_skew(Duration::from_secs(file.router.clock_skew_secs));
    if let Some(observer) = observer {
        builder = builder.observer(observer);
    }
    let mut memory_credentials = BTreeMap::new();
    let mut writers: BTreeMap<String, Arc<dyn CredentialWriter>> = BTreeMap::new();
    let mut oauth = None;
    let mut oauth_sections = Vec::new();
    let mut vaults = BTreeMap::new();
    for (name, store) in file.stores {
        let location = format!("stores.{name}");
        match store {
            StoreSection::Memory(section) => match memory_store(section, base, &location, env) {
                Ok((store, credentials)) => {
                    builder = builder.store(name.clone(), store);
                    memory_credentials.insert(name, credentials);
                }
                Err(mut more) => errors.append(&mut more),
            },
            StoreSection::Dcr(section) => match dcr_store(section, base, &location, env) {
                Ok(store) => builder = builder.store(name, store),
                Err(mut more) => errors.append(&mut more),
            },
            // Built after the others: its connections may live in a Vault store.
            StoreSection::Oauth(section) => oauth_sections.push((name, location, section)),
            StoreSection::Aws(section) => match aws_store(section, &location) {
                Ok(store) => {
                    let store = Arc::new(store);
                    builder = builder.store(name.clone(), store.clone());
                    writers.insert(name, store);
                }
                Err(error) => errors.push(error),
            },
            StoreSection::Vault(section) => {
                let cache = read_cache(section.cache_ttl_secs, section.cache_capacity);
                match vault_store(*section, base, &location, env).and_then(|store| {
                    let cached = CachedStore::new(store.clone(), cache)
                        .map_err(|err| located_store_error(&location, err))?;
                    Ok((store, cached))
                }) {
                    Ok((store, cached)) => {
                        let cached = Arc::new(cached);
                        builder = builder.store(name.clone(), cached.clone());
                        vaults.insert(name.clone(), Arc::new(store));
                        writers.insert(name, cached);
                    }
                    Err(error) => errors.push(error),
                }
            }
            StoreSection::TokenExchange(section) => {
                match token_exchange_store(section, &location, env) {
                    Ok(store) => builder = builder.store(name, store),
                    Err(mut more) => errors.append(&mut more),
                }
            }
        }
    }

    for (name, location, section) in oauth_sections {
        if oauth.is_some() {
            errors.push(ConfigError::new(
                &location,
                None,
                "only one store of type \"oauth\" may be configured (its providers share the /oauth/ endpoints)",
            ));
            continue;
        }
        match oauth_store(section, base, &location, env, &vaults) {
            Ok(endpoints) => {
                builder = builder.store(name, endpoints.store.clone());
                oauth = Some(Arc::new(endpoints));
            }
            Err(mut more) => errors.append(&mut more),
        }
    }

    let auth = match auth_settings(file.auth, base, env) {
        Ok(auth) => Some(auth),
        Err(mut more) => {
            errors.append(&mut more);
            None
        }
    };
    let server = file.server;
    if let Some(auth) = &auth {
        check_exposure(&server, auth, &mut errors);
    }
    for (field, value) in [
        ("body_limit_bytes", server.body_limit_bytes),
        ("max_connections", server.max_connections),
        ("max_in_flight", server.max_in_flight),
    ] {
        if value == 0 {
            errors.push(ConfigError::new(
                "server",
                Some(field),
                "must be at least 1",
            ));
        }
    }

    let router = builder.rules(rules).build();
    let router = match router {
        Ok(router) => Some(router),
        Err(err) => {
            errors.extend(err.errors);
            None
        }
    };
    match (router, auth) {
        (Some(router), Some(auth)) if errors.is_empty() => Ok(Loaded {
            router,
            server,
            auth,
            memory_credentials,
            writers,
            oauth,
            source,
        }),
        _ => Err(LoadError { errors }),
    }
}

fn memory_store(
    section: MemoryStoreSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(MemoryCredentialStore, Vec<Credential>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut credentials = section.credentials;
    if let Some(file) = &section.credentials_file {
        let path = base.join(file);
        match std::fs::read_to_string(&path) {
            Ok(json) => match parse_credentials_json(&json) {
                Ok(more) => credentials.extend(more),
                Err(err) => errors.push(ConfigError::new(
                    path.display().to_string(),
                    None,
                    err.to_string(),
                )),
            },
            Err(err) => errors.push(ConfigError::new(
                location,
                Some("credentials_file"),
                format!("{}: {err}", path.display()),
            )),
        }
    }
    let mut secrets: BTreeMap<CredentialRef, Secret> = BTreeMap::new();
    for (reference, source) in section.secrets {
        let field = format!("secrets.{reference}");
        let Ok(reference) = CredentialRef::new(reference) else {
            errors.push(ConfigError::new(
                location,
                Some(&field),
                "is not a valid credential ref",
            ));
            continue;
        };
        if !credentials.iter().any(|c| c.reference == reference) {
            errors.push(ConfigError::new(
                location,
                Some(&field),
                "names a ref no credential of this store has",
            ));
            continue;
        }
        match env(&source.env) {
            Some(value) if !value.is_empty() => {
                secrets.insert(reference, Secret::new(value));
            }
            _ => errors.push(ConfigError::new(
                location,
                Some(&field),
                format!("environment variable `{}` is not set", source.env),
            )),
        }
    }
    for credential in &mut credentials {
        if let Some(secret) = secrets.remove(&credential.reference) {
            credential.secret = Some(secret);
        }
    }
    let listed: Vec<Credential> = credentials
        .iter()
        .map(|c| c.clone().without_secret())
        .collect();
    match MemoryCredentialStore::from_credentials(credentials) {
        Ok(store) if errors.is_empty() => Ok((store, listed)),
        Ok(_) => Err(errors),
        Err(err) => {
            errors.push(ConfigError::new(location, None, err.to_string()));
            Err(errors)
        }
    }
}

/// The value of environment variable `variable`, named by `field` of `location`.
fn env_value(
    location: &str,
    field: &str,
    variable: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    match env(variable) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ConfigError::new(
            location,
            Some(field),
            format!("environment variable `{variable}` is not set"),
        )),
    }
}

/// A keyring whose current key is in environment variable `current.1` (id `current.2`), with
/// the older keys `old.1` (id → variable).
fn keyring(
    location: &str,
    current: (&str, &str, &str),
    old: (&str, &BTreeMap<String, String>),
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<agent_identity::identity_seal::Keyring, ConfigError> {
    use agent_identity::identity_seal::Keyring;
    let (field, variable, id) = current;
    let mut ring = Keyring::from_base64(id, &env_value(location, field, variable, env)?)
        .map_err(|err| ConfigError::new(location, Some(field), err.to_string()))?;
    let (old_field, old_keys) = old;
    for (id, variable) in old_keys {
        let key = Keyring::from_base64(id.clone(), &env_value(location, old_field, variable, env)?)
            .map_err(|err| ConfigError::new(location, Some(old_field), err.to_string()))?;
        ring = ring.with_keys_of(&key);
    }
    Ok(ring)
}

fn dcr_store(
    section: DcrSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<agent_identity::identity_dcr::DcrCredentialStore, Vec<ConfigError>> {
    use agent_identity::identity_dcr::{
        ClientMetadata, ClientPersistence, ClientProfile, ClientRegistry, Dcr, DcrCredentialStore,
        DcrSlot, FilePersistence, MemoryPersistence, Target,
    };
    let mut errors = Vec::new();
    let persistence: Arc<dyn ClientPersistence> =
        match (&section.clients_file, &section.clients_key_env) {
            (None, None) => Arc::new(MemoryPersistence::default()),
            (Some(file), Some(variable)) => {
                let path = base.join(file);
                // The configuration is loaded without a runtime: the file is read synchronously.
                match keyring(
                    location,
                    ("clients_key_env", variable, &section.clients_key_id),
                    ("clients_old_keys", &section.clients_old_keys),
                    env,
                )
                .and_then(|ring| {
                    FilePersistence::open_blocking(&path, ring).map_err(|err| {
                        ConfigError::new(location, Some("clients_file"), err.to_string())
                    })
                }) {
                    Ok(file) => Arc::new(file),
                    Err(err) => {
                        errors.push(err);
                        Arc::new(MemoryPersistence::default())
                    }
                }
            }
            _ => {
                errors.push(ConfigError::new(
                location,
                Some("clients_file"),
                "`clients_file` and `clients_key_env` go together (the file's secrets are sealed)",
            ));
                Arc::new(MemoryPersistence::default())
            }
        };
    let policy = agent_identity::identity_http::OutboundPolicy::default()
        .allow_http_loopback(section.allow_http_loopback)
        .allow_private(section.allow_private)
        .timeout(Duration::from_millis(section.timeout_ms))
        .max_body(section.max_body_bytes);
    let mut slots = Vec::new();
    for (index, slot) in section.slots.into_iter().enumerate() {
        let field = |name: &str| format!("slots[{index}].{name}");
        let reference = match CredentialRef::new(slot.reference) {
            Ok(reference) => reference,
            Err(err) => {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("ref")),
                    err.to_string(),
                ));
                continue;
            }
        };
        let target = match (slot.issuer, slot.resource) {
            (Some(issuer), None) => policy
                .check_url(&issuer, "issuer")
                .map(|_| Target::Issuer(issuer)),
            (None, Some(resource)) => policy
                .check_url(&resource, "resource")
                .map(|_| Target::Resource(resource)),
            _ => {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("issuer")),
                    "needs exactly one of `issuer` and `resource`",
                ));
                continue;
            }
        };
        let target = match target {
            Ok(target) => target,
            Err(err) => {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("issuer")),
                    err.to_string(),
                ));
                continue;
            }
        };
        let metadata = ClientMetadata::service(
            slot.client_name.unwrap_or_else(|| "agent-identity".into()),
            slot.scopes.join(" "),
        );
        let mut profile = ClientProfile::new(
            slot.profile.unwrap_or_else(|| reference.to_string()),
            metadata,
        );
        if let Some(variable) = &slot.initial_access_token_env {
            match env(variable) {
                Some(token) if !token.is_empty() => {
                    profile = profile.with_initial_access_token(Secret::new(token));
                }
                _ => errors.push(ConfigError::new(
                    location,
                    Some(&field("initial_access_token_env")),
                    format!("environment variable `{variable}` is not set"),
                )),
            }
        }
        slots.push(DcrSlot {
            reference,
            target,
            scopes: slot.scopes,
            profile,
        });
    }
    let dcr = match Dcr::new(policy) {
        Ok(dcr) => dcr,
        Err(err) => {
            errors.push(ConfigError::new(location, None, err.to_string()));
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let registry = ClientRegistry::new(dcr, persistence);
    Ok(DcrCredentialStore::new(Arc::new(registry), slots))
}

/// Why a place for secrets cannot be used without the connections key.
const NEEDS_CONNECTIONS_KEY: &str =
    "needs `connections_key_env` (the tokens kept there are sealed)";

/// What keeps records of secrets: the file at `path`, sealed with `ring`, opened by `open`;
/// `memory()` when no file is named, or when the file cannot be used (the problem, with `field`
/// of `location`, goes to `errors`).
fn sealed_file<T: ?Sized>(
    (location, field): (&str, &str),
    path: Option<PathBuf>,
    ring: Option<&agent_identity::identity_seal::Keyring>,
    errors: &mut Vec<ConfigError>,
    open: impl FnOnce(
        PathBuf,
        agent_identity::identity_seal::Keyring,
    ) -> Result<Arc<T>, agent_identity::Error>,
    memory: impl FnOnce() -> Arc<T>,
) -> Arc<T> {
    let problem = match (path, ring) {
        (None, _) => return memory(),
        (Some(path), Some(ring)) => match open(path, ring.clone()) {
            Ok(file) => return file,
            Err(err) => err.to_string(),
        },
        (Some(_), None) => NEEDS_CONNECTIONS_KEY.into(),
    };
    errors.push(ConfigError::new(location, Some(field), problem));
    memory()
}

/// True for a provider name usable in a path and a cookie name.
fn is_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn oauth_store(
    section: OAuthSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
    vaults: &BTreeMap<String, Arc<agent_identity::identity_vault::VaultCredentialStore>>,
) -> Result<crate::oauth::OAuthEndpoints, Vec<ConfigError>> {
    use agent_identity::identity_dcr::{
        ClientMetadata, ClientPersistence, ClientProfile, ClientRegistry, Dcr, FilePersistence,
        MemoryPersistence, Target,
    };
    use agent_identity::identity_oauth::{
        DelegatedTokenStore, FileTokens, MemoryTokens, Provider, TokenPersistence, VaultTokens,
    };
    let mut errors = Vec::new();
    let policy = agent_identity::identity_http::OutboundPolicy::default()
        .allow_http_loopback(section.allow_http_loopback)
        .allow_private(section.allow_private)
        .timeout(Duration::from_millis(section.timeout_ms));
    let public_url = match url::Url::parse(&section.public_url) {
        Ok(url) if url.query().is_some() || url.fragment().is_some() => {
            errors.push(ConfigError::new(
                location,
                Some("public_url"),
                "must have no query and no fragment",
            ));
            None
        }
        Ok(url)
            if url.scheme() == "https"
                || (url.scheme() == "http"
                    && section.allow_http_loopback
                    && crate::auth::check_jwks_url(url.as_str(), true).is_ok()) =>
        {
            Some(url)
        }
        Ok(_) => {
            errors.push(ConfigError::new(
                location,
                Some("public_url"),
                "must be https (plain http only on a loopback address with allow_http_loopback = true)",
            ));
            None
        }
        Err(err) => {
            errors.push(ConfigError::new(
                location,
                Some("public_url"),
                format!("is not a URL: {err}"),
            ));
            None
        }
    };
    let return_url = match section.return_url.as_deref().map(url::Url::parse) {
        None => None,
        Some(Ok(url)) if matches!(url.scheme(), "https" | "http") => Some(url),
        Some(_) => {
            errors.push(ConfigError::new(
                location,
                Some("return_url"),
                "must be an http(s) URL",
            ));
            None
        }
    };
    // One key seals the connections file, the clients file and the flow cookies. Without a
    // configured key, a key made at start seals the cookies: flows then finish only on the
    // replica that started them, which is also the only one holding the connections.
    let ring = match &section.connections_key_env {
        Some(variable) => match keyring(
            location,
            ("connections_key_env", variable, &section.connections_key_id),
            ("connections_old_keys", &section.connections_old_keys),
            env,
        ) {
            Ok(ring) => Some(ring),
            Err(err) => {
                errors.push(err);
                None
            }
        },
        None => None,
    };
    let needs_key = |field: &str, errors: &mut Vec<ConfigError>| {
        errors.push(ConfigError::new(
            location,
            Some(field),
            NEEDS_CONNECTIONS_KEY,
        ));
    };
    let persistence: Arc<dyn TokenPersistence> = match (&section.connections_file, &ring) {
        (Some(_), _) if section.connections_vault.is_some() => {
            errors.push(ConfigError::new(
                location,
                Some("connections_vault"),
                "names a second place for connections: keep `connections_file` or `connections_vault`",
            ));
            Arc::new(MemoryTokens::default())
        }
        (None, _) if section.connections_vault.is_some() => {
            let store = section.connections_vault.as_deref().unwrap_or_default();
            match (vaults.get(store), &ring) {
                (Some(vault), Some(ring)) => {
                    match vault.documents(&section.connections_vault_prefix) {
                        Ok(documents) => Arc::new(VaultTokens::new(documents, ring.clone())),
                        Err(err) => {
                            errors.push(ConfigError::new(
                                location,
                                Some("connections_vault_prefix"),
                                err.to_string(),
                            ));
                            Arc::new(MemoryTokens::default())
                        }
                    }
                }
                (None, _) => {
                    errors.push(ConfigError::new(
                        location,
                        Some("connections_vault"),
                        format!("names no store of type \"vault\": `{store}`"),
                    ));
                    Arc::new(MemoryTokens::default())
                }
                (Some(_), None) => {
                    needs_key("connections_vault", &mut errors);
                    Arc::new(MemoryTokens::default())
                }
            }
        }
        (file, ring) => sealed_file(
            (location, "connections_file"),
            file.as_ref().map(|f| base.join(f)),
            ring.as_ref(),
            &mut errors,
            |path, ring| {
                let file: Arc<dyn TokenPersistence> =
                    Arc::new(FileTokens::open_blocking(path, ring)?);
                Ok(file)
            },
            || Arc::new(MemoryTokens::default()),
        ),
    };
    let clients: Arc<dyn ClientPersistence> = sealed_file(
        (location, "clients_file"),
        section.clients_file.as_ref().map(|f| base.join(f)),
        ring.as_ref(),
        &mut errors,
        |path, ring| {
            let file: Arc<dyn ClientPersistence> =
                Arc::new(FilePersistence::open_blocking(path, ring)?);
            Ok(file)
        },
        || Arc::new(MemoryPersistence::default()),
    );
    let registry = match Dcr::new(policy.clone()) {
        Ok(dcr) => Some(Arc::new(ClientRegistry::new(dcr, clients))),
        Err(err) => {
            errors.push(ConfigError::new(location, None, err.to_string()));
            None
        }
    };
    let mut store = DelegatedTokenStore::new(persistence)
        .refresh_window(Duration::from_secs(section.refresh_window_secs));
    if section.providers.is_empty() {
        errors.push(ConfigError::new(
            location,
            Some("providers"),
            "names no provider",
        ));
    }
    for (name, provider) in section.providers {
        let field = |f: &str| format!("providers.{name}.{f}");
        if !is_provider_name(&name) {
            errors.push(ConfigError::new(
                location,
                Some(&format!("providers.{name}")),
                "a provider name is 1 to 64 of a-z, 0-9, `-` and `_`",
            ));
            continue;
        }
        let reference = match CredentialRef::new(provider.reference.clone()) {
            Ok(reference) => reference,
            Err(err) => {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("ref")),
                    err.to_string(),
                ));
                continue;
            }
        };
        let mut problem = |f: &str, text: String| {
            errors.push(ConfigError::new(location, Some(&field(f)), text));
        };
        let secret = match &provider.client_secret_env {
            Some(variable) => match env(variable) {
                Some(value) if !value.is_empty() => Some(Secret::new(value)),
                _ => {
                    problem(
                        "client_secret_env",
                        format!("environment variable `{variable}` is not set"),
                    );
                    continue;
                }
            },
            None => None,
        };
        let oauth = !matches!(provider.preset, Preset::Kaggle | Preset::ApiToken);
        let client_id = provider.client_id.clone();
        if oauth && provider.preset != Preset::Dcr && client_id.is_none() {
            problem("client_id", "is required by this preset".into());
            continue;
        }
        let client_id = client_id.unwrap_or_default();
        let redirect_uri = public_url.as_ref().map(|url| {
            format!(
                "{}/oauth/{name}/callback",
                url.as_str().trim_end_matches('/')
            )
        });
        let built = match provider.preset {
            Preset::Github => match secret {
                Some(secret) => Provider::github(client_id, secret),
                None => {
                    problem(
                        "client_secret_env",
                        "GitHub demands the client secret at its token endpoint".into(),
                    );
                    continue;
                }
            },
            Preset::Google => Provider::google(client_id, secret),
            Preset::Openid => match &provider.issuer {
                Some(issuer) => Provider::openid(
                    name.clone(),
                    issuer.clone(),
                    client_id,
                    secret,
                    policy.clone(),
                ),
                None => {
                    problem("issuer", "is required by preset \"openid\"".into());
                    continue;
                }
            },
            Preset::Dcr => {
                let target = match (&provider.issuer, &provider.resource) {
                    (Some(issuer), None) => Target::Issuer(issuer.clone()),
                    (None, Some(resource)) => Target::Resource(resource.clone()),
                    _ => {
                        problem(
                            "issuer",
                            "preset \"dcr\" needs exactly one of `issuer` and `resource`".into(),
                        );
                        continue;
                    }
                };
                let (Some(registry), Some(redirect_uri)) = (&registry, &redirect_uri) else {
                    continue;
                };
                let scopes = provider.scopes.clone().unwrap_or_default().join(" ");
                let mut profile = ClientProfile::new(
                    format!("oauth-{name}"),
                    ClientMetadata::web_app("agent-identity", redirect_uri.clone(), scopes),
                );
                if let Some(variable) = &provider.initial_access_token_env {
                    match env(variable) {
                        Some(token) if !token.is_empty() => {
                            profile = profile.with_initial_access_token(Secret::new(token));
                        }
                        _ => {
                            problem(
                                "initial_access_token_env",
                                format!("environment variable `{variable}` is not set"),
                            );
                            continue;
                        }
                    }
                }
                Ok(Provider::registered(
                    name.clone(),
                    registry.clone(),
                    target,
                    profile,
                ))
            }
            Preset::Kaggle => Ok(Provider::kaggle()),
            Preset::ApiToken => Ok(Provider::api_token(
                name.clone(),
                provider.token_page.clone(),
            )),
        };
        let mut built = match built {
            Ok(built) => built,
            Err(err) => {
                problem("preset", err.to_string());
                continue;
            }
        };
        if built.name() != name {
            problem(
                "preset",
                format!(
                    "preset {:?} serves provider `{}`: name the section `{}`",
                    provider.preset,
                    built.name(),
                    built.name()
                ),
            );
            continue;
        }
        if oauth {
            if let Some(scopes) = provider.scopes {
                built = built.scopes(scopes);
            }
            if let Some(prompt) = provider.prompt {
                built = built.prompt(prompt);
            }
            if provider.preset != Preset::Dcr
                && let Some(resource) = provider.resource
            {
                built = built.resource(resource);
            }
            for (key, value) in provider.extra {
                built = built.extra(key, value);
            }
        }
        store = store.provider(reference, built);
    }
    let (Some(public_url), true) = (public_url, errors.is_empty()) else {
        return Err(errors);
    };
    let cookie_keys = match ring {
        Some(ring) => ring,
        None => {
            let mut key = [0u8; 32];
            if getrandom::fill(&mut key).is_err() {
                return Err(vec![ConfigError::new(
                    location,
                    None,
                    "the system's random source failed",
                )]);
            }
            agent_identity::identity_seal::Keyring::new("process", key)
        }
    };
    Ok(crate::oauth::OAuthEndpoints::new(
        Arc::new(store),
        public_url,
        return_url,
        cookie_keys,
    ))
}

/// The read cache of a Vault or AWS section.
fn read_cache(ttl_secs: u64, capacity: u64) -> CacheConfig {
    CacheConfig::default()
        .ttl(Duration::from_secs(ttl_secs))
        .capacity(capacity)
}

fn aws_store(
    section: AwsSection,
    location: &str,
) -> Result<CachedStore<agent_identity::identity_aws::AwsSecretsManagerStore>, ConfigError> {
    let cache = read_cache(section.cache_ttl_secs, section.cache_capacity);
    let mut builder = agent_identity::identity_aws::AwsSecretsManagerStore::builder()
        .prefix(section.prefix)
        .timeout(Duration::from_millis(section.timeout_ms))
        .attempts(section.attempts)
        .recovery_window_days(Some(section.recovery_window_days));
    if let Some(region) = section.region {
        builder = builder.region(region);
    }
    if let Some(endpoint) = section.endpoint {
        builder = builder.endpoint(endpoint);
    }
    builder
        .build()
        .and_then(|store| CachedStore::new(store, cache))
        .map_err(|err| located_store_error(location, err))
}

/// A store builder's error, placed at the store's section.
fn located_store_error(location: &str, err: agent_identity::Error) -> ConfigError {
    match err {
        agent_identity::Error::InvalidConfig(inner) => ConfigError::new(
            location,
            Some(inner.field.as_deref().unwrap_or("type")),
            inner.problem,
        ),
        other => ConfigError::new(location, None, other.to_string()),
    }
}

fn vault_store(
    section: VaultSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<agent_identity::identity_vault::VaultCredentialStore, ConfigError> {
    use agent_identity::identity_vault::{VaultAuth, VaultCredentialStore};
    let located = |field: &str, problem: String| ConfigError::new(location, Some(field), problem);
    let from_env = |field: &str, variable: &str| match env(variable) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(located(
            field,
            format!("environment variable `{variable}` is not set"),
        )),
    };
    let address = match (section.address, section.address_env) {
        (Some(address), None) => address,
        (None, Some(variable)) => from_env("address_env", &variable)?,
        _ => {
            return Err(located(
                "address",
                "needs exactly one of `address` and `address_env`".into(),
            ));
        }
    };
    let auth = match section.auth {
        VaultAuthSection::Token { token_env } => {
            VaultAuth::token(Secret::new(from_env("auth.token_env", &token_env)?))
        }
        VaultAuthSection::Approle {
            mount,
            role_id,
            role_id_env,
            secret_id_env,
        } => {
            let role_id = match (role_id, role_id_env) {
                (Some(role_id), None) => role_id,
                (None, Some(variable)) => from_env("auth.role_id_env", &variable)?,
                _ => {
                    return Err(located(
                        "auth.role_id",
                        "needs exactly one of `role_id` and `role_id_env`".into(),
                    ));
                }
            };
            let secret_id = from_env("auth.secret_id_env", &secret_id_env)?;
            VaultAuth::app_role(role_id, Secret::new(secret_id)).with_mount(mount)
        }
        VaultAuthSection::Kubernetes {
            mount,
            role,
            jwt_path,
        } => {
            let auth = VaultAuth::kubernetes(role).with_mount(mount);
            match jwt_path {
                Some(path) => auth.with_jwt_path(base.join(path)),
                None => auth,
            }
        }
    };
    let mut builder = VaultCredentialStore::builder(address, auth)
        .mount(section.mount)
        .prefix(section.prefix)
        .timeout(Duration::from_millis(section.timeout_ms))
        .list_concurrency(section.list_concurrency);
    if let Some(prefix) = section.lease_prefix {
        builder = builder.lease_prefix(prefix);
    }
    if let Some(namespace) = section.namespace {
        builder = builder.namespace(namespace);
    }
    if let Some(path) = section.ca_bundle {
        builder = builder.ca_bundle(base.join(path));
    }
    match (section.client_cert, section.client_key) {
        (Some(cert), Some(key)) => {
            builder = builder.client_certificate(base.join(cert), base.join(key))
        }
        (None, None) => {}
        _ => {
            return Err(located(
                "client_cert",
                "`client_cert` and `client_key` go together".into(),
            ));
        }
    }
    builder
        .build()
        .map_err(|err| located_store_error(location, err))
}

fn token_exchange_store(
    section: TokenExchangeSection,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<agent_identity::identity_token_exchange::TokenExchangeStore, Vec<ConfigError>> {
    use agent_identity::identity_token_exchange::{
        ClientAuth, ExchangeConfig, StaticToken, TokenExchangeStore, TokenType,
    };
    let mut errors = Vec::new();
    let mut store = TokenExchangeStore::builder()
        .skew(Duration::from_secs(section.skew_secs))
        .timeout(Duration::from_millis(section.timeout_ms))
        .attempts(section.attempts);
    for (index, slot) in section.slots.into_iter().enumerate() {
        let field = |name: &str| format!("slots[{index}].{name}");
        let mut config = ExchangeConfig::builder(slot.reference, slot.client_id)
            .name(slot.name)
            .credential_scope(slot.scope)
            .allow_http_loopback(slot.allow_http_loopback)
            .client_auth(match slot.client_auth {
                ExchangeClientAuth::ClientSecretBasic => ClientAuth::ClientSecretBasic,
                ExchangeClientAuth::ClientSecretPost => ClientAuth::ClientSecretPost,
                ExchangeClientAuth::None => ClientAuth::None,
            })
            .scopes(slot.scopes);
        if let Some(endpoint) = slot.token_endpoint {
            config = config.token_endpoint(endpoint);
        }
        if let Some(issuer) = slot.issuer {
            config = config.issuer(issuer);
        }
        for (key, value) in slot.tags {
            config = config.tag(key, value);
        }
        if let Some(provider) = slot.provider {
            config = config.provider(provider);
        }
        for (name, variable, actor) in [
            ("subject_token_env", &slot.subject_token_env, false),
            ("actor_token_env", &slot.actor_token_env, true),
        ] {
            let Some(variable) = variable else { continue };
            match env(variable) {
                Some(token) if !token.is_empty() => {
                    let source = StaticToken::new(Secret::new(token));
                    config = if actor {
                        config.actor_source(source)
                    } else {
                        config.subject_source(source)
                    };
                }
                _ => errors.push(ConfigError::new(
                    location,
                    Some(&field(name)),
                    format!("environment variable `{variable}` is not set"),
                )),
            }
        }
        if let Some(kind) = slot.kind {
            config = config.kind(kind);
        }
        if let Some(variable) = &slot.client_secret_env {
            match env(variable) {
                Some(secret) if !secret.is_empty() => {
                    config = config.client_secret(Secret::new(secret))
                }
                _ => {
                    errors.push(ConfigError::new(
                        location,
                        Some(&field("client_secret_env")),
                        format!("environment variable `{variable}` is not set"),
                    ));
                    continue;
                }
            }
        }
        for audience in slot.audience {
            config = config.audience(audience);
        }
        for resource in slot.resource {
            config = config.resource(resource);
        }
        for (name, value) in slot.extra_params {
            config = config.extra_param(name, value);
        }
        for (name, value, set) in [
            ("subject_token_type", slot.subject_token_type, true),
            ("requested_token_type", slot.requested_token_type, false),
        ] {
            let Some(value) = value else { continue };
            match TokenType::new(value) {
                Ok(token_type) if set => config = config.subject_token_type(token_type),
                Ok(token_type) => config = config.requested_token_type(token_type),
                Err(_) => errors.push(ConfigError::new(
                    location,
                    Some(&field(name)),
                    "is not an absolute URI",
                )),
            }
        }
        if let Some(seconds) = slot.default_lifetime_secs {
            config = config.default_lifetime(Duration::from_secs(seconds));
        }
        match config.build() {
            Ok(config) => store = store.config(config),
            Err(err) => errors.push(err),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    store.build().map_err(|err| vec![err])
}

fn auth_settings(
    section: AuthSection,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthSettings, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let located = |field: &str, problem: &str| ConfigError::new("auth", Some(field), problem);
    match section.mode {
        AuthMode::None => {
            if !section.api_keys.is_empty() || section.jwt.is_some() {
                errors.push(located(
                    "mode",
                    "is `none` but keys or a JWT section are configured; set the mode you mean",
                ));
            }
            if errors.is_empty() {
                Ok(AuthSettings::None)
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
                if let Some(digest) = digest {
                    keys.push(ApiKey {
                        name: key.name,
                        digest,
                        user_id: key.user_id,
                    });
                }
            }
            if errors.is_empty() {
                Ok(AuthSettings::ApiKeys(keys))
            } else {
                Err(errors)
            }
        }
        AuthMode::Jwt => {
            let Some(mut jwt) = section.jwt else {
                return Err(vec![located(
                    "jwt",
                    "is missing; mode `jwt` needs an [auth.jwt] section",
                )]);
            };
            if jwt.issuer.trim().is_empty() {
                errors.push(located("jwt.issuer", "is empty"));
            }
            if jwt.audience.is_empty() {
                errors.push(located(
                    "jwt.audience",
                    "is empty; name the audience tokens must carry",
                ));
            }
            if let Err(problem) = crate::auth::parse_algorithms(&jwt.algorithms) {
                errors.push(located("jwt.algorithms", &problem));
            }
            match (&jwt.jwks_url, &jwt.jwks_file) {
                (Some(url), None) => {
                    if let Err(problem) = crate::auth::check_jwks_url(url, jwt.allow_http_loopback)
                    {
                        errors.push(located("jwt.jwks_url", &problem));
                    }
                }
                (None, Some(file)) => jwt.jwks_file = Some(base.join(file)),
                _ => errors.push(located(
                    "jwt",
                    "needs exactly one of `jwks_url` and `jwks_file`",
                )),
            }
            if errors.is_empty() {
                Ok(AuthSettings::Jwt(jwt))
            } else {
                Err(errors)
            }
        }
    }
}

/// Refuses an unauthenticated non-loopback bind unless the operator allowed it explicitly.
fn check_exposure(server: &ServerSettings, auth: &AuthSettings, errors: &mut Vec<ConfigError>) {
    if matches!(auth, AuthSettings::None)
        && !server.listen.ip().is_loopback()
        && !server.allow_unauthenticated
    {
        errors.push(ConfigError::new(
            "server",
            Some("listen"),
            format!(
                "{} is not a loopback address and no caller authentication is configured: anyone who reaches it could resolve credentials as any user. Configure [auth], or set allow_unauthenticated = true to accept that",
                server.listen
            ),
        ));
    }
}

/// Checks again, after the listen address was changed on the command line, that an
/// unauthenticated server is not exposed beyond loopback by accident.
pub fn check_exposure_of(loaded: &Loaded) -> Result<(), LoadError> {
    let mut errors = Vec::new();
    check_exposure(&loaded.server, &loaded.auth, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LoadError { errors })
    }
}
