//! [`ProviderConfig`]: a provider of users' own accounts as a configuration file writes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use identity_core::{ConfigEnv, ConfigError, CredentialRef};
use identity_dcr::{ClientChoice, ClientMetadata, ClientProfile, ClientRegistry, Target};
use identity_http::OutboundPolicy;
use serde::Deserialize;

use crate::Provider;

/// Which preset a [`ProviderConfig`] follows.
///
/// ```
/// let preset: identity_oauth::Preset = serde_json::from_str(r#""api-token""#)?;
/// assert_eq!(preset, identity_oauth::Preset::ApiToken);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Preset {
    /// [`Provider::github`].
    Github,
    /// [`Provider::google`].
    Google,
    /// [`Provider::openid`]: any OpenID provider, from its discovery document.
    Openid,
    /// [`Provider::registered`]: a client registered through DCR (or in advance, or named by
    /// its metadata document).
    Dcr,
    /// [`Provider::kaggle`]: a personal API token the user pastes.
    Kaggle,
    /// [`Provider::api_token`]: any personal API token.
    ApiToken,
}

/// A provider of users' own accounts as a configuration file writes it: its preset, the ref
/// whose credential is the requesting user's token, its client, and how its authorization
/// request is shaped. Secrets are named by environment variable. Unknown fields are refused.
///
/// ```
/// let config: identity_oauth::ProviderConfig = serde_json::from_value(serde_json::json!({
///     "preset": "openid", "ref": "corp-token", "issuer": "https://login.example.com",
///     "client_id": "agent", "client_secret_env": "CORP_SECRET", "scopes": ["openid", "email"]
/// }))?;
/// assert_eq!(config.preset, identity_oauth::Preset::Openid);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The preset.
    pub preset: Preset,
    /// The ref whose credential is the requesting user's token.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The client id (required but for `dcr`, `kaggle` and `api-token`).
    pub client_id: Option<String>,
    /// The environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// The issuer (`openid`, `dcr`).
    pub issuer: Option<String>,
    /// An RFC 8707 resource; for `dcr`, the protected resource whose metadata names the issuer.
    pub resource: Option<String>,
    /// Scopes, replacing the preset's.
    pub scopes: Option<Vec<String>>,
    /// Scopes a connection may ask for instead of `scopes`; `scopes` when absent.
    pub allowed_scopes: Option<Vec<String>>,
    /// For `dcr`: the HTTPS URL of this client's metadata document.
    pub client_metadata_url: Option<String>,
    /// The `prompt` parameter.
    pub prompt: Option<String>,
    /// More authorization parameters.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// Where users make an API token (`api-token`).
    pub token_page: Option<String>,
    /// The environment variable holding an initial access token for registration (`dcr`).
    pub initial_access_token_env: Option<String>,
}

/// What building a [`ProviderConfig`] needs besides the configuration: where it is read, the
/// outbound policy of discovery, the callback address, and the registry of `dcr` clients.
#[derive(Debug, Clone, Copy)]
pub struct ProviderContext<'a> {
    /// Variables and the configuration's directory.
    pub env: &'a ConfigEnv<'a>,
    /// Where problems are placed (e.g. "stores.accounts").
    pub location: &'a str,
    /// The policy of discovery and token calls (`openid`).
    pub policy: &'a OutboundPolicy,
    /// The callback address of this provider (`dcr` registers it).
    pub redirect_uri: Option<&'a str>,
    /// Where `dcr` clients are registered and kept.
    pub registry: Option<&'a Arc<ClientRegistry>>,
}

/// True for a provider name usable in a path and a cookie name: 1 to 64 of `a-z`, `0-9`, `-`
/// and `_`.
///
/// ```
/// assert!(identity_oauth::is_provider_name("github"));
/// assert!(!identity_oauth::is_provider_name("Git Hub"));
/// ```
pub fn is_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl ProviderConfig {
    /// The provider named `name` this configuration describes, with the ref it serves. Every
    /// problem is reported, each at `providers.<name>.<field>`.
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// use identity_oauth::{ProviderConfig, ProviderContext};
    ///
    /// let config: ProviderConfig = serde_json::from_value(serde_json::json!({
    ///     "preset": "github", "ref": "gh", "client_id": "Iv1.abc", "client_secret_env": "GH_SECRET"
    /// }))?;
    /// let vars = |name: &str| (name == "GH_SECRET").then(|| "s3cret".to_owned());
    /// let env = ConfigEnv::new(Path::new("."), &vars);
    /// let policy = identity_http::OutboundPolicy::default();
    /// let context = ProviderContext { env: &env, location: "stores.accounts", policy: &policy,
    ///     redirect_uri: None, registry: None };
    /// let (reference, provider) = config.build("github", &context).map_err(|e| e[0].clone())?;
    /// assert_eq!((reference.as_str(), provider.name()), ("gh", "github"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(
        self,
        name: &str,
        context: &ProviderContext<'_>,
    ) -> Result<(CredentialRef, Provider), Vec<ConfigError>> {
        let location = context.location;
        let field = |f: &str| format!("providers.{name}.{f}");
        let problem =
            |f: &str, text: String| vec![ConfigError::new(location, Some(&field(f)), text)];
        if !is_provider_name(name) {
            return Err(vec![ConfigError::new(
                location,
                Some(&format!("providers.{name}")),
                "a provider name is 1 to 64 of a-z, 0-9, `-` and `_`",
            )]);
        }
        let reference = CredentialRef::new(self.reference.clone())
            .map_err(|err| problem("ref", err.to_string()))?;
        let secret = match &self.client_secret_env {
            Some(variable) => Some(
                context
                    .env
                    .secret(location, &field("client_secret_env"), variable)
                    .map_err(|err| vec![err])?,
            ),
            None => None,
        };
        let oauth = !matches!(self.preset, Preset::Kaggle | Preset::ApiToken);
        if oauth && self.preset != Preset::Dcr && self.client_id.is_none() {
            return Err(problem("client_id", "is required by this preset".into()));
        }
        let client_id = self.client_id.clone().unwrap_or_default();
        let built = match self.preset {
            Preset::Github => match secret {
                Some(secret) => Provider::github(client_id, secret),
                None => {
                    return Err(problem(
                        "client_secret_env",
                        "GitHub demands the client secret at its token endpoint".into(),
                    ));
                }
            },
            Preset::Google => Provider::google(client_id, secret),
            Preset::Openid => match &self.issuer {
                Some(issuer) => Provider::openid(
                    name,
                    issuer.clone(),
                    client_id,
                    secret,
                    context.policy.clone(),
                ),
                None => return Err(problem("issuer", "is required by preset \"openid\"".into())),
            },
            Preset::Dcr => return self.registered(name, reference, context),
            Preset::Kaggle => Ok(Provider::kaggle()),
            Preset::ApiToken => Ok(Provider::api_token(name, self.token_page.clone())),
        };
        let built = built.map_err(|err| problem("preset", err.to_string()))?;
        self.shaped(name, reference, built, context)
    }

    /// A `dcr` provider: a client of the registry, for its issuer or resource.
    fn registered(
        self,
        name: &str,
        reference: CredentialRef,
        context: &ProviderContext<'_>,
    ) -> Result<(CredentialRef, Provider), Vec<ConfigError>> {
        let location = context.location;
        let field = |f: &str| format!("providers.{name}.{f}");
        let target = match (&self.issuer, &self.resource) {
            (Some(issuer), None) => Target::Issuer(issuer.clone()),
            (None, Some(resource)) => Target::Resource(resource.clone()),
            _ => {
                return Err(vec![ConfigError::new(
                    location,
                    Some(&field("issuer")),
                    "preset \"dcr\" needs exactly one of `issuer` and `resource`",
                )]);
            }
        };
        // Without a callback address or a registry the section has problems of its own,
        // reported where they are.
        let (Some(registry), Some(redirect_uri)) = (context.registry, context.redirect_uri) else {
            return Err(Vec::new());
        };
        let scopes = self.scopes.clone().unwrap_or_default().join(" ");
        let mut profile = ClientProfile::new(
            format!("oauth-{name}"),
            ClientMetadata::web_app("agent-identity", redirect_uri.to_owned(), scopes),
        );
        let mut errors = Vec::new();
        if let Some(variable) = &self.initial_access_token_env {
            match context
                .env
                .secret(location, &field("initial_access_token_env"), variable)
            {
                Ok(token) => profile = profile.with_initial_access_token(token),
                Err(err) => errors.push(err),
            }
        }
        // A client registered in advance at the issuer, or a metadata document, before
        // registration.
        let mut choice = ClientChoice::default();
        choice.client_id = self.client_id.clone();
        choice.client_secret_env = self.client_secret_env.clone();
        choice.client_metadata_url = self.client_metadata_url.clone();
        let profile = choice.apply(
            profile,
            self.issuer.as_deref(),
            context.env,
            location,
            &field,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        let built = Provider::registered(name, registry.clone(), target, profile);
        self.shaped(name, reference, built, context)
    }

    /// `built` with this configuration's scopes, prompt, resource and parameters, once it is
    /// checked to serve `name`.
    fn shaped(
        self,
        name: &str,
        reference: CredentialRef,
        mut built: Provider,
        context: &ProviderContext<'_>,
    ) -> Result<(CredentialRef, Provider), Vec<ConfigError>> {
        if built.name() != name {
            return Err(vec![ConfigError::new(
                context.location,
                Some(&format!("providers.{name}.preset")),
                format!(
                    "preset {:?} serves provider `{}`: name the section `{}`",
                    self.preset,
                    built.name(),
                    built.name()
                ),
            )]);
        }
        if !matches!(self.preset, Preset::Kaggle | Preset::ApiToken) {
            if let Some(scopes) = self.scopes {
                built = built.scopes(scopes);
            }
            if let Some(allowed) = self.allowed_scopes {
                built = built.allowed_scopes(allowed);
            }
            if let Some(prompt) = self.prompt {
                built = built.prompt(prompt);
            }
            if self.preset != Preset::Dcr
                && let Some(resource) = self.resource
            {
                built = built.resource(resource);
            }
            for (key, value) in self.extra {
                built = built.extra(key, value);
            }
        }
        Ok((reference, built))
    }
}
