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
//! mode = "none"                      # or "api-key", "jwt", "jwt-svid", "x509-svid"
//! ```
//!
//! Relative paths are relative to the configuration file. Secrets never appear in the file:
//! they are named by environment variable, or stored as a SHA-256 digest (API keys).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity::identity_cache::CachedStore;
use agent_identity::identity_memory::MemoryConfig;
use agent_identity::{
    ConfigEnv, ConfigError, Credential, CredentialWriter, ResolutionObserver, Router, RoutingRule,
    parse_credentials_json, parse_rules_json,
};
use serde::Deserialize;

mod attestation;
mod budgets;
mod governance;
mod revocations;

pub use crate::stores::shared::Retained;
pub use governance::PolicyFiles;

use crate::app::settings::ServerSettings;
use crate::auth::settings::{AuthSection, AuthSettings, Callers, auth_settings};
use crate::stores::aws::{AwsSection, aws_store};
use crate::stores::dcr::{DcrSection, dcr_store};
use crate::stores::memory::memory_store;
use crate::stores::oauth::{OAuthSection, oauth_store};
use crate::stores::shared::SharedPlaces;
use crate::stores::token_exchange::{TokenExchangeSection, token_exchange_store};
use crate::stores::vault::{VaultSection, vault_store};
use crate::stores::{Beside, located_store_error};

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
    pub oauth: Option<Arc<crate::app::oauth::OAuthEndpoints>>,
    /// The upstreams of the injection proxy (`[upstreams.<name>]`).
    pub upstreams: Vec<agent_identity::identity_proxy::Upstream>,
    /// Where the configuration came from, for logs.
    pub source: String,
    /// The permission policies in force (`[policies]`), with their files.
    pub policies: Option<PolicyFiles>,
    /// The approvals that hold calls for approvers (`[approvals]`).
    pub approvals: Option<agent_identity::identity_approval::Approvals>,
    /// The pages for people (`[web]`).
    pub web: Option<Arc<crate::app::web::Web>>,
    /// The identity tools over HTTP (`[mcp]`).
    pub mcp: Option<Arc<crate::app::mcp::McpSettings>>,
    /// What signs attestations of resolutions (`[attestation]`).
    pub attestor: Option<Arc<agent_identity::identity_attest::Attestor>>,
    /// The revocations in force on every replica (`[revocations]`).
    pub revocations: Option<agent_identity::identity_revocation::Revocations>,
    /// The files the configuration was read from (the file and its rules file), which a
    /// running server watches for changes; empty when it came from elsewhere.
    pub watched: Vec<PathBuf>,
}

/// A configuration that cannot be used. Every problem is listed.
#[derive(Debug, thiserror::Error)]
#[error("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    /// Every problem found.
    pub errors: Vec<ConfigError>,
}

impl Loaded {
    /// The HTTP application's state for this configuration, for a server bound to `bound`:
    /// authentication prepared (a JWKS fetched now, so that a bad source fails at start) and
    /// the stores checked once.
    pub async fn into_state(
        self,
        metrics: Arc<crate::app::metrics::Metrics>,
        bound: SocketAddr,
    ) -> Result<crate::app::AppState, String> {
        // Read before serving: until then the gate refuses everything.
        if let Some(revocations) = &self.revocations {
            revocations
                .refresh()
                .await
                .map_err(|err| format!("the revocation list cannot be read: {err}"))?;
            revocations.keep_fresh();
        }
        crate::app::AppState::new(
            self.router,
            self.server,
            self.auth,
            self.oauth,
            metrics,
            bound,
        )
        .await
        .map(|state| {
            state
                .with_upstreams(self.upstreams)
                .with_governance(self.policies, self.approvals)
                .with_pages(self.web)
                .with_mcp(self.mcp)
                .with_attestor(self.attestor)
                .with_revocations(self.revocations)
        })
    }
}

impl From<ConfigError> for LoadError {
    fn from(error: ConfigError) -> Self {
        Self {
            errors: vec![error],
        }
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
    Memory(MemoryConfig),
    TokenExchange(TokenExchangeSection),
    Vault(Box<VaultSection>),
    VaultDynamic(crate::stores::vault::VaultDynamicSection),
    Aws(Box<AwsSection>),
    Dcr(DcrSection),
    Oauth(OAuthSection),
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
    /// The injection proxy's upstreams, by name.
    #[serde(default)]
    upstreams: BTreeMap<String, agent_identity::identity_proxy::UpstreamConfig>,
    /// Budgets: requests per window per rule, credential, user or workload.
    #[serde(default)]
    budgets: Vec<agent_identity::identity_budget::BudgetConfig>,
    /// The `[redis.<name>]` server that counts budgets for every replica; this process's
    /// memory when absent.
    budgets_redis: Option<String>,
    /// Or: the store of `type = "vault"` whose KV mount counts budgets for every replica.
    budgets_vault: Option<String>,
    /// Where under that mount the counts are kept.
    #[serde(default = "budgets::default_vault_prefix")]
    budgets_vault_prefix: String,
    /// Where notifications go (a budget's soft threshold, a held call, a break-glass pass).
    notifications: Option<crate::notify::NotificationSettings>,
    /// What models cost, for budgets with `max_daily_usd`: dollars per million tokens.
    #[serde(default)]
    prices: BTreeMap<String, agent_identity::identity_budget::Price>,
    /// Permission policies in Cedar.
    policies: Option<governance::PoliciesSection>,
    /// Approvals of calls that need them.
    approvals: Option<governance::ApprovalsSection>,
    /// Pages for people: sign-in, approvals, connections.
    web: Option<crate::app::web::WebSettings>,
    /// The identity tools over HTTP.
    mcp: Option<crate::app::mcp::McpSection>,
    /// Signed attestations of resolutions.
    attestation: Option<attestation::AttestationSection>,
    /// Revocations on every replica.
    revocations: Option<revocations::RevocationsSection>,
    /// Redis servers that keep what replicas share, by name.
    #[serde(default)]
    redis: BTreeMap<String, agent_identity::identity_redis::RedisConfig>,
}

/// Reads, checks and builds the configuration in `path`.
pub fn load_file(
    path: &Path,
    observer: Option<Arc<dyn ResolutionObserver>>,
) -> Result<Loaded, LoadError> {
    load_file_retaining(path, observer, &fresh()?)
}

/// [`load_file`], building over what the process keeps across reloads (`retained`): the
/// configuration a running server reloads is built this way.
pub fn load_file_retaining(
    path: &Path,
    observer: Option<Arc<dyn ResolutionObserver>>,
    retained: &Arc<Retained>,
) -> Result<Loaded, LoadError> {
    let location = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError::new(&location, None, format!("cannot be read: {err}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|err| ConfigError::new(&location, None, err.to_string().trim_end().to_owned()))?;
    let mut watched = vec![path.to_owned()];
    watched.extend(file.rules_file.as_ref().map(|rules| base.join(rules)));
    let mut loaded = build(
        file,
        base,
        location,
        &|name| std::env::var(name).ok(),
        observer,
        retained,
    )?;
    loaded.watched = watched;
    Ok(loaded)
}

/// What a process that has just started retains.
fn fresh() -> Result<Arc<Retained>, LoadError> {
    Retained::new()
        .map(Arc::new)
        .map_err(|problem| ConfigError::new("process", None, problem).into())
}

/// Reads, checks and builds a configuration given as text. Relative paths in it are relative to
/// `base`; `source` names it in errors; `env` reads environment variables.
pub fn load_str(
    text: &str,
    base: &Path,
    source: String,
    env: &dyn Fn(&str) -> Option<String>,
    observer: Option<Arc<dyn ResolutionObserver>>,
) -> Result<Loaded, LoadError> {
    let file: ConfigFile = toml::from_str(text)
        .map_err(|err| ConfigError::new(&source, None, err.to_string().trim_end().to_owned()))?;
    build(file, base, source, env, observer, &fresh()?)
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
    let mut memory = MemoryConfig::default();
    memory.credentials = credentials;
    stores.insert(
        agent_identity::DEFAULT_STORE.to_owned(),
        StoreSection::Memory(memory),
    );
    let file = ConfigFile {
        rules_file: None,
        server,
        router: RouterSection::default(),
        stores,
        rules,
        auth: AuthSection::default(),
        upstreams: BTreeMap::new(),
        budgets: Vec::new(),
        budgets_redis: None,
        budgets_vault: None,
        budgets_vault_prefix: budgets::default_vault_prefix(),
        notifications: None,
        prices: BTreeMap::new(),
        policies: None,
        approvals: None,
        web: None,
        mcp: None,
        attestation: None,
        revocations: None,
        redis: BTreeMap::new(),
    };
    build(
        file,
        Path::new("."),
        "environment".into(),
        env,
        observer,
        &fresh()?,
    )
}

fn build(
    file: ConfigFile,
    base: &Path,
    source: String,
    env: &dyn Fn(&str) -> Option<String>,
    observer: Option<Arc<dyn ResolutionObserver>>,
    retained: &Arc<Retained>,
) -> Result<Loaded, LoadError> {
    let mut errors = Vec::new();
    let config_env = ConfigEnv::new(base, env);
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
    let mut dcr_sections = Vec::new();
    let mut dynamic_sections = Vec::new();
    let mut places = SharedPlaces::new(retained.clone());
    for (name, redis) in &file.redis {
        match redis.connect(&format!("redis.{name}"), env) {
            Ok(server) => {
                places.redis.insert(name.clone(), server);
            }
            Err(error) => errors.push(error),
        }
    }
    for (name, store) in file.stores {
        let location = format!("stores.{name}");
        match store {
            StoreSection::Memory(section) => match memory_store(section, &config_env, &location) {
                Ok((store, credentials)) => {
                    builder = builder.store(name.clone(), store);
                    memory_credentials.insert(name, credentials);
                }
                Err(mut more) => errors.append(&mut more),
            },
            // Built after the others: its clients may live in a Vault store.
            StoreSection::Dcr(section) => dcr_sections.push((name, location, section)),
            // Built after the others: it uses a Vault store's connection.
            StoreSection::VaultDynamic(section) => {
                dynamic_sections.push((name, location, section));
            }
            // Built after the others: its connections may live in a Vault store.
            StoreSection::Oauth(section) => oauth_sections.push((name, location, section)),
            StoreSection::Aws(section) => match aws_store(*section, &config_env, &location) {
                Ok(store) => {
                    let store = Arc::new(store);
                    builder = builder.store(name.clone(), store.clone());
                    writers.insert(name, store);
                }
                Err(error) => errors.push(error),
            },
            StoreSection::Vault(section) => {
                let Beside { sidecar, store } = *section;
                let cache = sidecar.cache();
                match vault_store(store, &config_env, &location).and_then(|store| {
                    let cached = CachedStore::new(store.clone(), cache)
                        .map_err(|err| located_store_error(&location, err))?;
                    Ok((store, cached))
                }) {
                    Ok((store, cached)) => {
                        let cached = Arc::new(cached);
                        builder = builder.store(name.clone(), cached.clone());
                        places.vaults.insert(name.clone(), Arc::new(store));
                        writers.insert(name, cached);
                    }
                    Err(error) => errors.push(error),
                }
            }
            StoreSection::TokenExchange(section) => {
                match token_exchange_store(section, &config_env, &location) {
                    Ok(store) => builder = builder.store(name, store),
                    Err(mut more) => errors.append(&mut more),
                }
            }
        }
    }

    for (name, location, section) in dynamic_sections {
        match section.store(&places.vaults, &location) {
            Ok(store) => builder = builder.store(name, store),
            Err(err) => errors.push(err),
        }
    }

    for (name, location, section) in dcr_sections {
        match dcr_store(section, &config_env, (&name, &location), &places) {
            Ok(store) => builder = builder.store(name, store),
            Err(mut more) => errors.append(&mut more),
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
        match oauth_store(section, base, &location, env, &places) {
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
    let mut server = file.server;
    if let Some(tls) = &mut server.tls {
        tls.cert_file = base.join(&tls.cert_file);
        tls.key_file = base.join(&tls.key_file);
        if let Some(clients) = &mut tls.client_auth {
            for bundle in clients.trust_domains.values_mut() {
                *bundle = base.join(&*bundle);
            }
        }
        // Read now, so that a bad file stops the configuration with its name.
        if let Err(problem) = crate::tls::Tls::new(tls) {
            errors.push(ConfigError::new("server", Some("tls"), problem));
        }
    }
    if let Some(auth) = &auth {
        check_exposure(&server, auth, &mut errors);
        check_client_certificates(&server, auth, &mut errors);
    }
    for (field, value) in [
        ("body_limit_bytes", server.body_limit_bytes),
        ("max_connections", server.max_connections),
        ("max_in_flight", server.max_in_flight),
        ("max_headers", server.max_headers),
    ] {
        if value == 0 {
            errors.push(ConfigError::new(
                "server",
                Some(field),
                "must be at least 1",
            ));
        }
    }

    if server.max_header_bytes < 8192 {
        errors.push(ConfigError::new(
            "server",
            Some("max_header_bytes"),
            "must be at least 8192",
        ));
    }

    let webhook = match file.notifications.as_ref().map(crate::notify::Webhook::new) {
        Some(Ok(webhook)) => Some(webhook),
        Some(Err(err)) => {
            errors.push(err);
            None
        }
        None => None,
    };
    // Revocations before every other gate: what is revoked is neither held nor counted.
    let revocations = file
        .revocations
        .as_ref()
        .and_then(|section| section.revocations(&places, &mut errors));
    if let Some(revocations) = &revocations {
        builder = builder.gate(revocations.clone());
    }
    // Policies first (a call they forbid is not held for approval), then approvals, then
    // budgets (a held or refused call spends none).
    let governance = governance::governance(
        file.policies,
        file.approvals,
        &rules,
        base,
        &places,
        &mut errors,
    );
    if let Some(policies) = &governance.policies {
        builder = builder.gate(policies.gate.clone());
    }
    let approvals = governance.approvals.map(|approvals| match &webhook {
        Some(webhook) => approvals.with_notifier(Arc::new(webhook.clone())),
        None => approvals,
    });
    if let Some(approvals) = &approvals {
        builder = builder.gate(approvals.clone());
    }
    if let Some(budgets) = budgets::budgets(
        file.budgets,
        file.prices,
        &budgets::Place {
            redis: file.budgets_redis.as_deref(),
            vault: file.budgets_vault.as_deref(),
            vault_prefix: &file.budgets_vault_prefix,
        },
        &places,
        &rules,
        &mut errors,
    ) {
        builder = builder.gate(match &webhook {
            Some(webhook) => budgets.notifier(webhook.clone()),
            None => budgets,
        });
    }
    let web = match file
        .web
        .map(|settings| crate::app::web::Web::new(settings, env))
    {
        Some(Ok(web)) => Some(Arc::new(web)),
        Some(Err(more)) => {
            errors.extend(more);
            None
        }
        None => None,
    };
    // Checked against the authentication it relies on (whose own errors are listed already).
    let mcp = match (file.mcp, &auth) {
        (Some(section), Some(auth)) => match section.check(auth) {
            Ok(mcp) => Some(Arc::new(mcp)),
            Err(err) => {
                errors.push(err);
                None
            }
        },
        _ => None,
    };
    let attestor = file
        .attestation
        .as_ref()
        .and_then(|section| section.attestor(base, &mut errors))
        .map(Arc::new);
    let router = builder.rules(rules).build();
    let router = match router {
        Ok(router) => Some(router),
        Err(err) => {
            errors.extend(err.errors);
            None
        }
    };
    let mut upstreams = Vec::new();
    for (name, config) in file.upstreams {
        match agent_identity::identity_proxy::Upstream::new(&name, config) {
            Ok(upstream) => upstreams.push(upstream),
            Err(err) => errors.push(err),
        }
    }
    match (router, auth) {
        (Some(router), Some(auth)) if errors.is_empty() => {
            let loaded = Loaded {
                upstreams,
                router,
                server,
                auth,
                memory_credentials,
                writers,
                oauth,
                source,
                policies: governance.policies,
                approvals,
                web,
                mcp,
                attestor,
                revocations,
                watched: Vec::new(),
            };
            for item in secret_shaped_refs(&loaded) {
                tracing::warn!(
                    item = item.as_str(),
                    "a credential ref looks like a secret: refs are names, shown in explanations and listings; move the secret into the store"
                );
            }
            Ok(loaded)
        }
        _ => Err(LoadError { errors }),
    }
}

/// The rules and memory credentials whose ref looks like secret material (never the ref
/// itself): `rule `r1``, `credential `c1``.
pub fn secret_shaped_refs(loaded: &Loaded) -> Vec<String> {
    let rules = loaded
        .router
        .rules()
        .filter(|rule| {
            agent_identity::CredentialRef::new(rule.credential_ref.as_str())
                .is_ok_and(|reference| reference.looks_like_secret())
        })
        .map(|rule| format!("rule `{}`", rule.id));
    let credentials = loaded
        .memory_credentials
        .values()
        .flatten()
        .filter(|credential| credential.reference.looks_like_secret())
        .map(|credential| format!("credential `{}`", credential.id));
    rules.chain(credentials).collect()
}

/// Mode `x509-svid` needs client certificates required of every connection; client
/// certificates without authentication would prove a workload nobody asks about.
fn check_client_certificates(
    server: &ServerSettings,
    auth: &AuthSettings,
    errors: &mut Vec<ConfigError>,
) {
    let client_auth = server.tls.as_ref().and_then(|tls| tls.client_auth.as_ref());
    match (&auth.callers, client_auth) {
        (Callers::X509Svid, None) => errors.push(ConfigError::new(
            "auth",
            Some("mode"),
            "is `x509-svid`, but no [server.tls.client_auth] names the trust bundles to check client certificates with",
        )),
        (Callers::X509Svid, Some(clients)) if !clients.required => {
            errors.push(ConfigError::new(
                "server",
                Some("tls.client_auth.required"),
                "is false, but mode `x509-svid` authenticates callers by their certificate alone: every client must present one",
            ));
        }
        (Callers::None, Some(_)) => errors.push(ConfigError::new(
            "auth",
            Some("mode"),
            "is `none`, but [server.tls.client_auth] asks for client certificates: set mode `x509-svid` to authenticate callers by them (or another mode to combine them with keys or tokens)",
        )),
        _ => {}
    }
}

/// Refuses an unauthenticated non-loopback bind unless the operator allowed it explicitly.
fn check_exposure(server: &ServerSettings, auth: &AuthSettings, errors: &mut Vec<ConfigError>) {
    if matches!(auth.callers, Callers::None)
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
    // Unauthenticated beyond loopback, the Host check is all that stands between a page using
    // DNS rebinding and the API: it answers only for the names it is reached by.
    if matches!(auth.callers, Callers::None)
        && !server.listen.ip().is_loopback()
        && server.allow_unauthenticated
        && server.allowed_hosts.is_empty()
    {
        errors.push(ConfigError::new(
            "server",
            Some("allowed_hosts"),
            "is empty: an unauthenticated server beyond loopback answers only for the Host values named here (`sidecar.internal:3001`); name the ones it is reached by",
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
