//! `type = "oauth"`: users' own accounts, connected through the `/oauth/` endpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity::ConfigError;
use serde::Deserialize;

use super::dcr::{default_clients_key_id, default_dcr_timeout};
use super::{NEEDS_CONNECTIONS_KEY, keyring, sealed_file};
use agent_identity::ConfigEnv;
use agent_identity::identity_oauth::{ProviderConfig, ProviderContext};

/// A `[stores.<name>]` of `type = "oauth"`: users' own accounts (GitHub, Google, any OpenID
/// provider, a DCR client, Kaggle-style API tokens), connected through the sidecar's `/oauth/`
/// endpoints; each provider's slot yields the requesting user's token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OAuthSection {
    /// The address users' browsers reach this sidecar at: callbacks are
    /// `<public_url>/oauth/<provider>/callback`.
    pub(crate) public_url: String,
    /// Where browsers go after a callback, with `provider`, `status` (and `error`) added.
    pub(crate) return_url: Option<String>,
    /// Allow plain http to loopback servers (local providers, tests).
    #[serde(default)]
    pub(crate) allow_http_loopback: bool,
    /// Allow private and link-local addresses (a provider inside the network).
    #[serde(default)]
    pub(crate) allow_private: bool,
    #[serde(default = "default_dcr_timeout")]
    pub(crate) timeout_ms: u64,
    /// Refresh access tokens expiring within this many seconds.
    #[serde(default = "default_refresh_window")]
    pub(crate) refresh_window_secs: u64,
    /// Where connections are kept (relative to the configuration file); in memory when absent.
    pub(crate) connections_file: Option<PathBuf>,
    /// Or: the `vault` store whose KV mount keeps them, shared by every replica.
    pub(crate) connections_vault: Option<String>,
    /// Where in that mount.
    #[serde(default = "default_connections_vault_prefix")]
    pub(crate) connections_vault_prefix: String,
    /// Or: the `[redis.<name>]` server that keeps them, shared by every replica.
    pub(crate) connections_redis: Option<String>,
    /// The environment variable holding the current key (32 bytes, base64) that seals the
    /// connections file and the flow cookies, and the id it is recorded under.
    pub(crate) connections_key_env: Option<String>,
    #[serde(default = "default_clients_key_id")]
    pub(crate) connections_key_id: String,
    /// Older keys still accepted, by id: the environment variables holding them.
    #[serde(default)]
    pub(crate) connections_old_keys: BTreeMap<String, String>,
    /// Where clients registered for `preset = "dcr"` providers are kept (sealed with the same
    /// key); beside shared connections when absent (so that replicas register once), else in
    /// memory.
    pub(crate) clients_file: Option<PathBuf>,
    pub(crate) providers: BTreeMap<String, ProviderConfig>,
}

pub(crate) fn default_connections_vault_prefix() -> String {
    "agent-identity-connections".into()
}

pub(crate) fn default_refresh_window() -> u64 {
    60
}

pub(crate) fn oauth_store(
    section: OAuthSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
    places: &super::shared::SharedPlaces,
) -> Result<crate::app::oauth::OAuthEndpoints, Vec<ConfigError>> {
    use agent_identity::identity_dcr::{
        ClientPersistence, ClientRegistry, Dcr, FilePersistence, SharedClients,
    };
    use agent_identity::identity_oauth::{
        DelegatedTokenStore, FileTokens, MemoryTokens, SharedTokens, TokenPersistence,
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
    let shared = match places.state(
        location,
        &super::shared::Choice {
            vault: ("connections_vault", section.connections_vault.as_deref()),
            vault_prefix: (
                "connections_vault_prefix",
                &section.connections_vault_prefix,
            ),
            redis: ("connections_redis", section.connections_redis.as_deref()),
            namespace: "connections",
        },
    ) {
        Ok(shared) => shared,
        Err(err) => {
            errors.push(err);
            None
        }
    };
    let shared_field = if section.connections_redis.is_some() {
        "connections_redis"
    } else {
        "connections_vault"
    };
    // Kept with shared connections, the clients of `preset = "dcr"` providers are shared too:
    // a refresh token is bound to the client it was issued to.
    let mut shared_clients: Option<Arc<dyn ClientPersistence>> = None;
    let persistence: Arc<dyn TokenPersistence> = match (&section.connections_file, shared, &ring) {
        (Some(_), Some(_), _) => {
            errors.push(ConfigError::new(
                location,
                Some(shared_field),
                "names a second place for connections: keep `connections_file` or this",
            ));
            Arc::new(MemoryTokens::default())
        }
        (None, Some(state), Some(ring)) => {
            shared_clients = Some(Arc::new(SharedClients::new(state.clone(), ring.clone())));
            Arc::new(SharedTokens::new(state, ring.clone()))
        }
        (None, Some(_), None) => {
            needs_key(shared_field, &mut errors);
            Arc::new(MemoryTokens::default())
        }
        (file, None, ring) => sealed_file(
            (location, "connections_file"),
            file.as_ref().map(|f| base.join(f)),
            ring.as_ref(),
            &mut errors,
            |path, ring| {
                let file: Arc<dyn TokenPersistence> =
                    Arc::new(FileTokens::open_blocking(path, ring)?);
                Ok(file)
            },
            // In this process's memory, kept across reloads.
            || places.retained.tokens(),
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
        || match shared_clients {
            Some(shared) => shared,
            None => Arc::new(SharedClients::new(
                places.retained.memory("oauth-clients"),
                places.retained.ring().clone(),
            )),
        },
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
    let config_env = ConfigEnv::new(base, env);
    for (name, provider) in section.providers {
        let redirect_uri = public_url.as_ref().map(|url| {
            format!(
                "{}/oauth/{name}/callback",
                url.as_str().trim_end_matches('/')
            )
        });
        let context = ProviderContext {
            env: &config_env,
            location,
            policy: &policy,
            redirect_uri: redirect_uri.as_deref(),
            registry: registry.as_ref(),
        };
        match provider.build(&name, &context) {
            Ok((reference, provider)) => store = store.provider(reference, provider),
            Err(mut more) => errors.append(&mut more),
        }
    }
    let (Some(public_url), true) = (public_url, errors.is_empty()) else {
        return Err(errors);
    };
    // Without a configured key, the key made when the process started (kept across reloads).
    let cookie_keys = ring.unwrap_or_else(|| places.retained.ring().clone());
    Ok(crate::app::oauth::OAuthEndpoints::new(
        Arc::new(store),
        public_url,
        return_url,
        cookie_keys,
    ))
}
