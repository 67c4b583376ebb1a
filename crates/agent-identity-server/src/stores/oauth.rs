//! `type = "oauth"`: users' own accounts, connected through the `/oauth/` endpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity::{ConfigError, CredentialRef, Secret};
use serde::Deserialize;

use super::dcr::{default_clients_key_id, default_dcr_timeout};
use super::{NEEDS_CONNECTIONS_KEY, keyring, sealed_file};
use agent_identity::ConfigEnv;
use agent_identity::identity_dcr::ClientChoice;

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
    /// The environment variable holding the current key (32 bytes, base64) that seals the
    /// connections file and the flow cookies, and the id it is recorded under.
    pub(crate) connections_key_env: Option<String>,
    #[serde(default = "default_clients_key_id")]
    pub(crate) connections_key_id: String,
    /// Older keys still accepted, by id: the environment variables holding them.
    #[serde(default)]
    pub(crate) connections_old_keys: BTreeMap<String, String>,
    /// Where clients registered for `preset = "dcr"` providers are kept (sealed with the same
    /// key); in memory when absent.
    pub(crate) clients_file: Option<PathBuf>,
    pub(crate) providers: BTreeMap<String, ProviderSection>,
}

pub(crate) fn default_connections_vault_prefix() -> String {
    "agent-identity-connections".into()
}

pub(crate) fn default_refresh_window() -> u64 {
    60
}

/// Which preset a provider follows.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Preset {
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
pub(crate) struct ProviderSection {
    pub(crate) preset: Preset,
    /// The ref whose credential is the requesting user's token.
    #[serde(rename = "ref")]
    pub(crate) reference: String,
    pub(crate) client_id: Option<String>,
    /// The environment variable holding the client secret.
    pub(crate) client_secret_env: Option<String>,
    /// The issuer (`openid`, `dcr`).
    pub(crate) issuer: Option<String>,
    /// An RFC 8707 resource; for `dcr`, the protected resource whose metadata names the issuer.
    pub(crate) resource: Option<String>,
    /// Scopes, replacing the preset's.
    pub(crate) scopes: Option<Vec<String>>,
    /// Scopes a connect may ask for (`?scope=` on `/oauth/<provider>/connect`) instead of
    /// `scopes`; `scopes` when absent.
    pub(crate) allowed_scopes: Option<Vec<String>>,
    /// For `dcr`: the HTTPS URL of this client's metadata document, its client id where the
    /// server accepts Client ID Metadata Documents.
    pub(crate) client_metadata_url: Option<String>,
    pub(crate) prompt: Option<String>,
    /// More authorization parameters.
    #[serde(default)]
    pub(crate) extra: BTreeMap<String, String>,
    /// Where users make an API token (`api-token`).
    pub(crate) token_page: Option<String>,
    /// The environment variable holding an initial access token for registration (`dcr`).
    pub(crate) initial_access_token_env: Option<String>,
}

/// True for a provider name usable in a path and a cookie name.
pub(crate) fn is_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub(crate) fn oauth_store(
    section: OAuthSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
    vaults: &BTreeMap<String, Arc<agent_identity::identity_vault::VaultCredentialStore>>,
) -> Result<crate::app::oauth::OAuthEndpoints, Vec<ConfigError>> {
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
                // A client registered in advance at the issuer, or a metadata document, before
                // registration.
                let mut choice_errors = Vec::new();
                let mut choice = ClientChoice::default();
                choice.client_id = provider.client_id.clone();
                choice.client_secret_env = provider.client_secret_env.clone();
                choice.client_metadata_url = provider.client_metadata_url.clone();
                let profile = choice.apply(
                    profile,
                    provider.issuer.as_deref(),
                    &ConfigEnv::new(base, env),
                    location,
                    &field,
                    &mut choice_errors,
                );
                if !choice_errors.is_empty() {
                    errors.append(&mut choice_errors);
                    continue;
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
            if let Some(allowed) = provider.allowed_scopes {
                built = built.allowed_scopes(allowed);
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
    Ok(crate::app::oauth::OAuthEndpoints::new(
        Arc::new(store),
        public_url,
        return_url,
        cookie_keys,
    ))
}
