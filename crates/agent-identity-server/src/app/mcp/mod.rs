//! The identity tools over MCP: what an agent may ask of its identity (who it acts for, the
//! user's connections, a link to connect a provider, the rules and why one decides, the state
//! of its held calls). None approves anything or returns a secret.
//!
//! Over stdio (`agent-identity mcp`), the tools act for the user the command names: the
//! process that starts the server is trusted to say so. Over HTTP (`/mcp` on the sidecar,
//! with `[mcp]`), the sidecar is an OAuth-protected MCP resource: it serves its metadata
//! (RFC 9728), answers a request without a valid bearer token with 401 and
//! `WWW-Authenticate: Bearer resource_metadata=…`, and the tools act for the token's subject.
//! Requests are served statelessly, so that any replica answers any request.

mod settings;
mod tools;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

pub(crate) use settings::McpSection;
pub use settings::McpSettings;
pub use tools::IdentityTools;

use crate::app::AppState;

/// Where the tools are served.
pub(crate) const MCP_PATH: &str = "/mcp";

/// Where their protected resource metadata is served (RFC 9728 §3.1).
pub(crate) const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// The largest JSON-RPC request body taken.
const MAX_BODY: usize = 256 * 1024;

/// The tools' HTTP service over `state`, acting for each request's caller.
pub(crate) fn service(
    state: &Arc<AppState>,
) -> StreamableHttpService<IdentityTools, LocalSessionManager> {
    let state = state.clone();
    // The sidecar checks `Host` and `Origin` before any route: the service's own check would
    // only repeat it with a list of its own.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_BODY)
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(IdentityTools::new(state.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// `GET /.well-known/oauth-protected-resource/mcp`: the resource, the authorization servers
/// whose tokens it takes, and how to present them.
pub(crate) async fn metadata(settings: Arc<McpSettings>) -> Response {
    let mut body = serde_json::json!({
        "resource": settings.resource,
        "authorization_servers": settings.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "agent-identity",
    });
    if !settings.scopes.is_empty() {
        body["scopes_supported"] = serde_json::json!(settings.scopes);
    }
    axum::Json(body).into_response()
}

/// Tells a client refused for want of a token where to learn how to get one (RFC 9728 §5.1).
pub(crate) async fn challenge(
    settings: Arc<McpSettings>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        let value = format!("Bearer resource_metadata=\"{}\"", settings.metadata_url);
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}
