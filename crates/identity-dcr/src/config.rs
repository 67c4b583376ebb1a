//! [`DcrStoreConfig`]: a DCR store as a configuration file writes it, and [`ClientChoice`]: how
//! a client comes to be at an authorization server.

use std::sync::Arc;
use std::time::Duration;

use identity_core::{ConfigEnv, ConfigError, CredentialRef};
use identity_http::{OutboundPolicy, PrivateKeyConfig};
use serde::Deserialize;

use crate::{
    ClientMetadata, ClientPersistence, ClientProfile, ClientRegistry, Dcr, DcrCredentialStore,
    DcrSlot, RegisteredClient, Target,
};

/// A DCR store as a configuration file writes it: slots whose credential is an access token
/// obtained with `client_credentials` by a client registered at run time (RFC 7591), registered
/// in advance, or named by its metadata document. Where registered clients are kept is not part
/// of it: [`build`](Self::build) is given the [`ClientPersistence`]. Unknown fields are refused.
///
/// ```
/// use std::path::Path;
/// use std::sync::Arc;
/// use identity_core::ConfigEnv;
/// use identity_dcr::{DcrStoreConfig, MemoryPersistence};
///
/// let config: DcrStoreConfig = serde_json::from_value(serde_json::json!({
///     "slots": [{ "ref": "crm", "issuer": "https://auth.example.com", "scopes": ["crm:read"] }]
/// }))?;
/// let store = config
///     .build(&ConfigEnv::process(Path::new(".")), "store `mcp`", Arc::new(MemoryPersistence::default()))
///     .map_err(|errors| errors[0].clone())?;
/// assert!(format!("{store:?}").contains("crm"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DcrStoreConfig {
    /// Allow plain HTTP to authorization servers on this machine (local servers, tests).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// Allow private and link-local addresses (an authorization server inside the network).
    #[serde(default)]
    pub allow_private: bool,
    /// The longest one call may take, in milliseconds (10,000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The largest answer read, in bytes (1 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The slots.
    pub slots: Vec<DcrSlotConfig>,
}

/// One slot of a [`DcrStoreConfig`].
///
/// ```
/// let slot: identity_dcr::DcrSlotConfig = serde_json::from_value(serde_json::json!({
///     "ref": "crm", "resource": "https://crm.example.com/mcp", "client_name": "crm agent"
/// }))?;
/// assert_eq!(slot.client_name.as_deref(), Some("crm agent"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DcrSlotConfig {
    /// The credential ref rules name.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The authorization server's issuer, or:
    pub issuer: Option<String>,
    /// the protected resource whose RFC 9728 metadata names it.
    pub resource: Option<String>,
    /// Scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The client name registered (`agent-identity`).
    pub client_name: Option<String>,
    /// The client profile (one registration per issuer and profile); the ref by default.
    pub profile: Option<String>,
    /// The environment variable holding an initial access token, for servers that demand one.
    pub initial_access_token_env: Option<String>,
    /// How the client comes to be, before dynamic registration.
    #[serde(flatten)]
    pub client: ClientChoice,
}

/// How a client comes to be at an authorization server before dynamic registration, as a
/// configuration writes it: a client registered in advance (`client_id`, with its secret in
/// `client_secret_env` or its key in `private_key`; it belongs to one issuer), or a Client ID
/// Metadata Document (`client_metadata_url`, with `private_key` when the document names one).
///
/// ```
/// let choice: identity_dcr::ClientChoice = serde_json::from_value(serde_json::json!({
///     "client_id": "svc-agent", "client_secret_env": "SVC_SECRET"
/// }))?;
/// assert_eq!(choice.client_id.as_deref(), Some("svc-agent"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ClientChoice {
    /// A client registered in advance at the issuer.
    pub client_id: Option<String>,
    /// The environment variable holding that client's secret.
    pub client_secret_env: Option<String>,
    /// The HTTPS URL of this client's metadata document, used as its client id where the
    /// server accepts Client ID Metadata Documents.
    pub client_metadata_url: Option<String>,
    /// The private key of a client without a secret (`private_key_jwt`).
    pub private_key: Option<PrivateKeyConfig>,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

impl ClientChoice {
    /// `profile` with this choice applied, for a client of `issuer` (when the place is an
    /// issuer). Problems go to `errors`, placed at `location` and `field(name)`.
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// use identity_dcr::{ClientChoice, ClientMetadata, ClientProfile};
    ///
    /// let choice: ClientChoice = serde_json::from_value(serde_json::json!({ "client_id": "svc" }))?;
    /// let mut errors = Vec::new();
    /// let profile = choice.apply(
    ///     ClientProfile::new("p", ClientMetadata::default()), Some("https://as.example.com"),
    ///     &ConfigEnv::process(Path::new(".")), "store `x`", &|name| format!("slots[0].{name}"), &mut errors);
    /// assert!(errors.is_empty());
    /// assert!(profile.pre_registered.contains_key("https://as.example.com"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn apply(
        self,
        mut profile: ClientProfile,
        issuer: Option<&str>,
        env: &ConfigEnv<'_>,
        location: &str,
        field: &dyn Fn(&str) -> String,
        errors: &mut Vec<ConfigError>,
    ) -> ClientProfile {
        if let Some(key) = &self.private_key {
            match key.load(env, location, &field("private_key")) {
                Ok(key) => profile = profile.with_private_key(key),
                Err(err) => errors.push(err),
            }
        }
        if let Some(client_id) = self.client_id {
            let Some(issuer) = issuer else {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("client_id")),
                    "needs `issuer`: a client registered in advance belongs to one issuer",
                ));
                return profile;
            };
            let secret = match &self.client_secret_env {
                Some(variable) => {
                    match env.value(location, &field("client_secret_env"), variable) {
                        Ok(secret) => Some(secret),
                        Err(err) => {
                            errors.push(err);
                            return profile;
                        }
                    }
                }
                None => None,
            };
            let mut answer = serde_json::json!({ "client_id": client_id });
            if let Some(secret) = secret {
                answer["client_secret"] = secret.into();
            }
            match RegisteredClient::from_registration_answer(issuer, answer) {
                Ok(client) => profile = profile.with_pre_registered(client),
                Err(err) => errors.push(ConfigError::new(
                    location,
                    Some(&field("client_id")),
                    err.to_string(),
                )),
            }
        } else if self.client_secret_env.is_some() {
            errors.push(ConfigError::new(
                location,
                Some(&field("client_secret_env")),
                "is set without `client_id`",
            ));
        }
        if let Some(text) = &self.client_metadata_url {
            match url::Url::parse(text) {
                Ok(url) if url.scheme() == "https" && url.path() != "/" => {
                    profile = profile.with_metadata_document(url);
                }
                _ => errors.push(ConfigError::new(
                    location,
                    Some(&field("client_metadata_url")),
                    "must be an https URL with a path (the client's metadata document)",
                )),
            }
        }
        profile
    }
}

impl DcrStoreConfig {
    /// The outbound policy of this configuration.
    fn policy(&self) -> OutboundPolicy {
        OutboundPolicy::default()
            .allow_http_loopback(self.allow_http_loopback)
            .allow_private(self.allow_private)
            .timeout(Duration::from_millis(self.timeout_ms))
            .max_body(self.max_body_bytes)
    }

    /// The store this configuration describes, its clients kept in `persistence`. Every
    /// problem is reported, each placed at `location` and its field (`slots[0].issuer`, ...).
    ///
    /// ```
    /// # use std::path::Path;
    /// # use std::sync::Arc;
    /// # use identity_core::ConfigEnv;
    /// let config: identity_dcr::DcrStoreConfig = serde_json::from_value(serde_json::json!({
    ///     "slots": [{ "ref": "a", "issuer": "http://10.0.0.7" },
    ///               { "ref": "b", "issuer": "https://as.example.com", "resource": "https://r.example.com" }]
    /// }))?;
    /// let errors = config.build(&ConfigEnv::process(Path::new(".")), "store `x`",
    ///     Arc::new(identity_dcr::MemoryPersistence::default())).unwrap_err();
    /// let fields: Vec<_> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
    /// assert_eq!(fields, ["slots[0].issuer", "slots[1].issuer"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn build(
        self,
        env: &ConfigEnv<'_>,
        location: &str,
        persistence: Arc<dyn ClientPersistence>,
    ) -> Result<DcrCredentialStore, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let policy = self.policy();
        let mut slots = Vec::new();
        for (index, slot) in self.slots.into_iter().enumerate() {
            let field = |name: &str| format!("slots[{index}].{name}");
            match slot.slot(&policy, env, location, &field) {
                Ok(slot) => slots.push(slot),
                Err(mut more) => errors.append(&mut more),
            }
        }
        let dcr = match Dcr::new(policy) {
            Ok(dcr) => dcr,
            Err(err) => {
                errors.push(err.located(location));
                return Err(errors);
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let registry = ClientRegistry::new(dcr, persistence);
        Ok(DcrCredentialStore::new(Arc::new(registry), slots))
    }
}

impl DcrSlotConfig {
    fn slot(
        self,
        policy: &OutboundPolicy,
        env: &ConfigEnv<'_>,
        location: &str,
        field: &dyn Fn(&str) -> String,
    ) -> Result<DcrSlot, Vec<ConfigError>> {
        let at = |name: &str, problem: String| {
            vec![ConfigError::new(location, Some(&field(name)), problem)]
        };
        let reference =
            CredentialRef::new(self.reference).map_err(|err| at("ref", err.to_string()))?;
        let issuer = self.issuer.clone();
        let target = match (self.issuer, self.resource) {
            (Some(issuer), None) => policy
                .check_url(&issuer, "issuer")
                .map(|_| Target::Issuer(issuer)),
            (None, Some(resource)) => policy
                .check_url(&resource, "resource")
                .map(|_| Target::Resource(resource)),
            _ => {
                return Err(at(
                    "issuer",
                    "needs exactly one of `issuer` and `resource`".into(),
                ));
            }
        }
        .map_err(|err| at("issuer", err.to_string()))?;
        let metadata = ClientMetadata::service(
            self.client_name.unwrap_or_else(|| "agent-identity".into()),
            self.scopes.join(" "),
        );
        let mut profile = ClientProfile::new(
            self.profile.unwrap_or_else(|| reference.to_string()),
            metadata,
        );
        let mut errors = Vec::new();
        if let Some(variable) = &self.initial_access_token_env {
            match env.secret(location, &field("initial_access_token_env"), variable) {
                Ok(token) => profile = profile.with_initial_access_token(token),
                Err(err) => errors.push(err),
            }
        }
        let profile = self.client.apply(
            profile,
            issuer.as_deref(),
            env,
            location,
            field,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(DcrSlot {
            reference,
            target,
            scopes: self.scopes,
            profile,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_field_of_a_slot_is_refused_even_beside_the_flattened_choice() {
        let err = serde_json::from_value::<DcrStoreConfig>(serde_json::json!({
            "slots": [{ "ref": "a", "issuer": "https://as.example.com", "client_secet_env": "X" }]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("client_secet_env"), "{err}");
    }
}
