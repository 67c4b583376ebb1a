//! [`UpstreamConfig`]: an upstream as a configuration file writes it, and [`Upstream`], checked.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use identity_core::{ConfigError, ResourceKind};
use identity_http::{HttpClient, OutboundPolicy};
use serde::Deserialize;
use url::Url;

use crate::ProxyError;

/// How the credential is put into a proxied request.
///
/// ```
/// let injection: identity_proxy::Injection =
///     serde_json::from_value(serde_json::json!({ "type": "header", "name": "x-api-key" }))?;
/// assert_eq!(injection, identity_proxy::Injection::Header { name: "x-api-key".into(), prefix: String::new() });
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Injection {
    /// `Authorization: Bearer <secret>` (the default).
    #[default]
    Bearer,
    /// `Authorization: Basic base64(<username>:<secret>)`.
    Basic {
        /// The user name.
        username: String,
    },
    /// `<name>: <prefix><secret>`, e.g. `x-api-key`.
    Header {
        /// The header's name.
        name: String,
        /// Text before the secret.
        #[serde(default)]
        prefix: String,
    },
    /// `?<name>=<secret>` added to the query.
    Query {
        /// The parameter's name.
        name: String,
    },
}

/// An upstream as a configuration file writes it: where it is, which provider and resource it
/// stands for in the routing context, how the credential is injected, and what may be asked of
/// it. Unknown fields are refused.
///
/// ```
/// let config: identity_proxy::UpstreamConfig = serde_json::from_value(serde_json::json!({
///     "base_url": "https://api.github.com", "provider": "github",
///     "methods": ["GET"], "path_prefixes": ["/repos/", "/user"]
/// }))?;
/// let upstream = identity_proxy::Upstream::new("github", config)?;
/// assert_eq!(upstream.name(), "github");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// The upstream's base URL; proxied paths are appended to its path.
    pub base_url: String,
    /// The provider the upstream stands for in the routing context.
    pub provider: String,
    /// The resource id when the request names none (the upstream's name).
    pub resource: Option<String>,
    /// The resource kind when the request names none (`shared`).
    #[serde(default = "default_resource_kind")]
    pub resource_kind: ResourceKind,
    /// How the credential is injected.
    #[serde(default)]
    pub inject: Injection,
    /// Methods allowed (all when empty).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Path prefixes allowed, each starting with `/` (all when empty).
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// The longest the upstream may stay silent, in milliseconds (30,000): before its answer's
    /// head, and between two pieces of a streamed answer.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// The longest connecting may take, in milliseconds (3,000).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The largest request body passed on, in bytes (10 MiB).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u64,
    /// Allow plain HTTP to this machine (local upstreams, tests).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// Allow private and link-local addresses (an upstream inside the network).
    #[serde(default)]
    pub allow_private: bool,
}

fn default_resource_kind() -> ResourceKind {
    ResourceKind::Shared
}

fn default_idle_timeout_ms() -> u64 {
    30_000
}

fn default_connect_timeout_ms() -> u64 {
    3_000
}

fn default_max_request_bytes() -> u64 {
    10 * 1024 * 1024
}

/// A checked upstream, with the HTTP client that reaches it under its address policy.
#[derive(Debug)]
pub struct Upstream {
    pub(crate) name: Arc<str>,
    pub(crate) base: Url,
    pub(crate) provider: String,
    pub(crate) resource: String,
    pub(crate) resource_kind: ResourceKind,
    pub(crate) inject: Injection,
    pub(crate) methods: Vec<Method>,
    pub(crate) path_prefixes: Vec<String>,
    pub(crate) max_request_bytes: u64,
    pub(crate) http: HttpClient,
}

impl Upstream {
    /// Checks `config` (its URL under the address policy, methods, prefixes, the injected
    /// header's name) and makes its client. Problems are placed at `upstreams.<name>`.
    ///
    /// ```
    /// let config: identity_proxy::UpstreamConfig = serde_json::from_value(serde_json::json!({
    ///     "base_url": "http://10.0.0.8/api", "provider": "internal"
    /// }))?;
    /// let err = identity_proxy::Upstream::new("internal", config).unwrap_err();
    /// assert!(err.to_string().contains("base_url"), "{err}");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn new(name: &str, config: UpstreamConfig) -> Result<Self, ConfigError> {
        let location = format!("upstreams.{name}");
        let problem = |field: &str, text: String| ConfigError::new(&location, Some(field), text);
        let policy = OutboundPolicy::default()
            .allow_http_loopback(config.allow_http_loopback)
            .allow_private(config.allow_private)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .streaming(Duration::from_millis(config.idle_timeout_ms.max(1)));
        let base = policy
            .check_url(&config.base_url, "base_url")
            .map_err(|err| problem("base_url", err.to_string()))?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(problem(
                "base_url",
                "must have no query and no fragment".into(),
            ));
        }
        let methods = config
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| problem("methods", format!("`{m}` is not an HTTP method")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(prefix) = config.path_prefixes.iter().find(|p| !p.starts_with('/')) {
            return Err(problem(
                "path_prefixes",
                format!("`{prefix}` does not start with `/`"),
            ));
        }
        match &config.inject {
            Injection::Header { name: header, .. } | Injection::Query { name: header }
                if header.is_empty() =>
            {
                return Err(problem("inject.name", "is empty".into()));
            }
            Injection::Header { name: header, .. }
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() =>
            {
                return Err(problem(
                    "inject.name",
                    format!("`{header}` is not a header name"),
                ));
            }
            _ => {}
        }
        let http = HttpClient::new(policy).map_err(|err| problem("base_url", err.to_string()))?;
        Ok(Self {
            name: Arc::from(name),
            base,
            provider: config.provider,
            resource: config.resource.unwrap_or_else(|| name.to_owned()),
            resource_kind: config.resource_kind,
            inject: config.inject,
            methods,
            path_prefixes: config.path_prefixes,
            max_request_bytes: config.max_request_bytes,
            http,
        })
    }

    /// The upstream's name, the first segment after `/proxy/`.
    ///
    /// ```
    /// let config: identity_proxy::UpstreamConfig = serde_json::from_value(serde_json::json!({
    ///     "base_url": "https://api.openai.com/v1", "provider": "openai"
    /// }))?;
    /// assert_eq!(identity_proxy::Upstream::new("openai", config)?.name(), "openai");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why `method` on `path` may not be proxied, if it may not.
    pub(crate) fn allows(&self, method: &Method, path: &str) -> Result<(), ProxyError> {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return Err(ProxyError::MethodNotAllowed);
        }
        if !self.path_prefixes.is_empty()
            && !self
                .path_prefixes
                .iter()
                .any(|prefix| path.starts_with(prefix))
        {
            return Err(ProxyError::PathNotAllowed);
        }
        Ok(())
    }

    /// The upstream URL of `path` (already checked: no `..` segment) and `query`.
    pub(crate) fn url(&self, path: &str, query: Option<&str>) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{}", self.base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url.set_query(query);
        url
    }
}
