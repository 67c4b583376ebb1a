//! A backend that resolves a credential inside its own axum handlers.
//!
//! `cargo run -p agent-identity-axum-example`, then:
//!
//! ```text
//! curl -s localhost:3002/repos/acme/web -H 'x-user: alice'     # alice's own GitHub token
//! curl -s localhost:3002/repos/acme/web -H 'x-user: bob'       # the shared read-only bot
//! curl -s -X POST localhost:3002/repos/acme/web -H 'x-user: bob'   # 403: no rule lets bob write
//! ```
//!
//! The application decides what a request means (here: the user from a header its own
//! authentication would set, the action from the method); the layer resolves and the handler
//! uses the credential without ever returning it.

use std::sync::Arc;

use agent_identity::layer::{ResolveLayer, Resolved};
use agent_identity::{
    Credential, CredentialKind, MemoryCredentialStore, RequestContext, ResourceKind, Router,
    RoutingRule, Secret,
};
use axum::routing::get;
use http::StatusCode;
use http::request::Parts;

/// The request context of one request, as this application understands it.
fn context(parts: &Parts) -> Result<RequestContext, (StatusCode, &'static str)> {
    let user = parts
        .headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .ok_or((StatusCode::UNAUTHORIZED, "who are you? (x-user)"))?;
    let action = if parts.method == http::Method::GET {
        "read"
    } else {
        "write"
    };
    RequestContext::builder()
        .user_id(user)
        .resource_id(parts.uri.path().trim_start_matches("/repos/"))
        .resource_kind(ResourceKind::Shared)
        .provider("github")
        .model("gpt-4o")
        .action(action)
        .trace_id("example")
        .build()
        .map_err(|_| (StatusCode::BAD_REQUEST, "the request cannot be described"))
}

/// Would call GitHub with the credential; says which credential it would use.
async fn repository(Resolved(resolution): Resolved) -> String {
    let token = resolution
        .secret()
        .map(|s| s.expose_secret().len())
        .unwrap_or(0);
    format!(
        "would call GitHub with credential {} ({} characters) for {}, by rule {}\n",
        resolution.credential_id, token, resolution.resolved_for, resolution.rule_id
    )
}

fn router() -> Result<Router, Box<dyn std::error::Error>> {
    let store = MemoryCredentialStore::new();
    store.insert(
        Credential::new("alice-github", CredentialKind::UserDelegated, "alice-gh")?
            .with_scope("repo")
            .with_secret(Secret::new("gho_example_alice")),
    );
    store.insert(
        Credential::new("bot-readonly", CredentialKind::Fixed, "github-bot-ro")?
            .with_scope("contents:read")
            .with_secret(Secret::new("ghp_example_bot")),
    );
    Ok(Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("alice-own", "alice-gh")
                .with_priority(20)
                .with_match_user_id("alice"),
        )
        .rule(
            RoutingRule::new("bot-reads", "github-bot-ro")
                .with_priority(10)
                .with_match_action(["read"])
                .with_read_only(true),
        )
        .build()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = axum::Router::new()
        .route("/repos/{owner}/{repo}", get(repository).post(repository))
        .layer(ResolveLayer::new(Arc::new(router()?), context));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
