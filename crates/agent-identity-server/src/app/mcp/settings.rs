//! The `[mcp]` section: the identity tools served over HTTP at `/mcp`, as an OAuth-protected
//! MCP resource.

use agent_identity::ConfigError;
use serde::Deserialize;

use crate::auth::settings::{AuthSettings, Callers};

/// `[mcp]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct McpSection {
    /// The URL agents reach the tools at (`https://sidecar.example/mcp`): the protected
    /// resource's identifier (RFC 9728), and the audience its tokens must carry.
    resource: String,
    /// The authorization servers whose tokens it takes; `[auth.jwt]`'s issuer when absent.
    #[serde(default)]
    authorization_servers: Vec<String>,
    /// The scopes it advertises (`scopes_supported`).
    #[serde(default)]
    scopes: Vec<String>,
}

/// The identity tools over HTTP, checked.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// The protected resource's identifier, `…/mcp`.
    pub resource: String,
    /// Where its metadata is served: `/.well-known/oauth-protected-resource` inserted
    /// before the resource's path (RFC 9728 §3.1).
    pub metadata_url: String,
    /// The authorization servers advertised.
    pub authorization_servers: Vec<String>,
    /// The scopes advertised.
    pub scopes: Vec<String>,
}

impl McpSection {
    /// The settings, checked against the authentication they rely on: the tools act for the
    /// subject of a bearer JWT whose audience names the resource.
    pub(crate) fn check(self, auth: &AuthSettings) -> Result<McpSettings, ConfigError> {
        let problem = |field: &str, text: String| ConfigError::new("mcp", Some(field), text);
        let url = url::Url::parse(&self.resource)
            .map_err(|err| problem("resource", format!("is not a URL: {err}")))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(problem(
                "resource",
                "must be an https URL (http only on a loopback address)".into(),
            ));
        }
        if url.path() != "/mcp" || url.query().is_some() || url.fragment().is_some() {
            return Err(problem(
                "resource",
                "must name the tools' path, `/mcp`, with no query or fragment (https://host/mcp)"
                    .into(),
            ));
        }
        let Callers::Jwt(jwt) = &auth.callers else {
            return Err(problem(
                "resource",
                "needs `[auth] mode = \"jwt\"`: the tools act for the subject of the bearer token an authorization server issued".into(),
            ));
        };
        if !jwt.audience.contains(&self.resource) {
            return Err(problem(
                "resource",
                format!(
                    "is not among `[auth.jwt] audience`: tokens issued for `{}` would be refused",
                    self.resource
                ),
            ));
        }
        let authorization_servers = if self.authorization_servers.is_empty() {
            vec![jwt.issuer.clone()]
        } else {
            self.authorization_servers
        };
        let metadata_url = format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            url.origin().ascii_serialization()
        );
        Ok(McpSettings {
            resource: self.resource,
            metadata_url,
            authorization_servers,
            scopes: self.scopes,
        })
    }
}
