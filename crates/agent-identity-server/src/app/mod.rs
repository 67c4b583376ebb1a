//! The HTTP API of the sidecar (WIRE.md): health, resolve, migrate-resolve, metrics, and the
//! `/oauth/` endpoints, delivery and the injection proxy.

mod denials;
pub mod health;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod settings;

mod body;
mod deliver;
mod governance;
mod guard;
mod proxy;
pub mod reload;
mod resolve;
mod revocations;
mod state;
pub mod web;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_identity::layer::json_error;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::{any, get, post};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::Semaphore;

pub(crate) use body::read_json_body;
pub use state::AppState;

use guard::Guard;
use metrics::Metrics;

/// Every route, as written in the router: the metrics label of a request is the route it
/// matched ([`MatchedPath`]), one of these, or `unmatched`.
const ROUTES: &[&str] = &[
    "/health",
    "/api/health",
    "/metrics",
    "/api/resolve",
    "/api/migrate/resolve",
    "/oauth/connections",
    "/oauth/{provider}/connect",
    "/oauth/{provider}/disconnect",
    "/oauth/{provider}/token",
    "/oauth/{provider}/callback",
    "/proxy/{upstream}/{*path}",
    "/api/deliver",
    "/oauth/{provider}/link",
    "/api/authorize",
    "/api/approvals",
    "/api/approvals/key",
    "/api/approvals/{id}",
    "/api/approvals/{id}/approve",
    "/api/approvals/{id}/reject",
    "/api/approvals/{id}/break-glass",
    "/api/reload",
    mcp::MCP_PATH,
    mcp::METADATA_PATH,
    "/.well-known/jwks.json",
    "/api/revocations",
];

/// The sidecar's HTTP application.
pub fn app(state: AppState) -> axum::Router {
    // `/metrics` is behind the same authentication as the API: its labels name rules and
    // upstreams, which are not for anyone who can reach the port.
    let api = axum::Router::new()
        .route(ROUTES[2], get(metrics::metrics_text))
        .route(ROUTES[3], post(resolve::resolve))
        .route(ROUTES[4], post(resolve::migrate))
        .route(ROUTES[10], any(proxy::proxy))
        .route(ROUTES[11], post(deliver::deliver))
        .route(ROUTES[13], post(governance::authorize))
        .route(ROUTES[14], get(governance::list))
        .route(ROUTES[15], get(governance::key))
        .route(ROUTES[16], get(governance::show))
        .route(ROUTES[17], post(governance::approve))
        .route(ROUTES[18], post(governance::reject))
        .route(ROUTES[19], post(governance::break_glass))
        .route(ROUTES[20], post(reload::reload))
        .route(ROUTES[24], get(revocations::list).post(revocations::revoke));
    // Users manage their connections as themselves; the callback is authenticated by its
    // sealed flow cookie instead (a browser coming back from a provider carries no token).
    let oauth = axum::Router::new()
        .route(ROUTES[5], get(oauth::connections))
        .route(ROUTES[12], post(oauth::connect::link))
        .route(ROUTES[7], post(oauth::disconnect))
        .route(ROUTES[8], post(oauth::api_token));
    // The browser's own steps: a connect link's ticket, and the flow's cookie, are their
    // authentication.
    let callback = axum::Router::new()
        .route(
            ROUTES[6],
            get(oauth::connect::confirm).post(oauth::connect::start),
        )
        .route(ROUTES[9], get(oauth::callback))
        .with_state(state.oauth.clone());
    // With no authentication configured every caller is anonymous: no middleware to run.
    let (api, oauth) = if state.authenticator.is_none() {
        (api, oauth)
    } else {
        let layer = from_fn_with_state(state.authenticator.clone(), crate::auth::authenticate);
        (api.route_layer(layer.clone()), oauth.route_layer(layer))
    };
    let oauth = oauth.with_state(state.oauth.clone()).merge(callback);
    // The first checks run in one layer: the Host and Origin guard, then the in-flight limit.
    let front = Arc::new(Front {
        guard: Guard::new(&state.settings, state.bound),
        in_flight: Semaphore::new(state.settings.max_in_flight),
    });
    let timeout = from_fn_with_state(state.settings.request_timeout(), deadline);
    let metrics = state.metrics.clone();
    let has_pages = state.web.is_some();
    // The attestation keys are public: auditors fetch them without being callers.
    let jwks = match state.attestor.clone() {
        Some(attestor) => axum::Router::new().route(
            ROUTES[23],
            get(move || std::future::ready(attestation_keys(&attestor))),
        ),
        None => axum::Router::new(),
    };
    // Shared behind one `Arc`: every request hands the handler its own copy of the state.
    let state = Arc::new(state);
    let mcp = mcp_routes(&state);
    axum::Router::new()
        .route(ROUTES[0], get(health::health))
        .route(ROUTES[1], get(health::health))
        .merge(api)
        .merge(oauth)
        .merge(mcp)
        .merge(jwks)
        .merge(if has_pages {
            web::routes()
        } else {
            axum::Router::new()
        })
        .method_not_allowed_fallback(method_not_allowed)
        // Route layers run once the route is known: the timeout inside, the record around it
        // (so that a timed-out request is counted), both for every route.
        .route_layer(timeout)
        .route_layer(from_fn_with_state(metrics.clone(), record))
        .fallback(not_found)
        .with_state(state)
        .layer(from_fn(move |request: Request, next: Next| {
            let front = front.clone();
            async move { front.check(request, next).await }
        }))
}

/// The identity tools at `/mcp` and their metadata, when `[mcp]` is configured: the tools
/// behind the callers' authentication, a refusal for want of a token naming the metadata.
fn mcp_routes(state: &Arc<AppState>) -> axum::Router<Arc<AppState>> {
    let Some(settings) = state.mcp.clone() else {
        return axum::Router::new();
    };
    let mut tools = axum::Router::new().route_service(ROUTES[21], mcp::service(state));
    if !state.authenticator.is_none() {
        tools = tools.route_layer(from_fn_with_state(
            state.authenticator.clone(),
            crate::auth::authenticate,
        ));
    }
    let challenged = settings.clone();
    tools
        .route_layer(from_fn(move |request: Request, next: Next| {
            mcp::challenge(challenged.clone(), request, next)
        }))
        .route(ROUTES[22], get(move || mcp::metadata(settings.clone())))
}

/// `GET /.well-known/jwks.json`: the keys that sign attestations, the active one first.
fn attestation_keys(attestor: &agent_identity::identity_attest::Attestor) -> Response {
    use axum::response::IntoResponse;
    let mut response = axum::Json(attestor.jwks()).into_response();
    // Public, and changed only by a reload: caches may keep it briefly.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// What every request meets first.
struct Front {
    guard: Guard,
    in_flight: Semaphore,
}

impl Front {
    async fn check(&self, request: Request, next: Next) -> Response {
        if let Some(refusal) = self.guard.refusal(&request) {
            return refusal;
        }
        // Refuse rather than queue: a queued request only times out later.
        let Ok(_permit) = self.in_flight.try_acquire() else {
            let mut response = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "too many requests in flight; retry shortly",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };
        next.run(request).await
    }
}

/// The route label of a matched request (bounded: the routes above).
fn route_of(matched: Option<&MatchedPath>) -> &'static str {
    matched
        .and_then(|m| ROUTES.iter().find(|route| **route == m.as_str()))
        .copied()
        .unwrap_or("unmatched")
}

/// The method label: the methods the API uses, `OTHER` for the rest (bounded label values).
fn method_of(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_of(request.extensions().get::<MatchedPath>());
    let method = method_of(request.method());
    let response = next.run(request).await;
    metrics.record_request(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// Answers 504 `timeout` (JSON, not to be stored) when the answer's head is not ready within
/// `limit`. Not 408: clients and browsers resend a 408 on their own, and a resolution that ran
/// out of time (a slow store) should not be doubled by a blind retry. A streamed answer is not
/// cut once its head has gone.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => json_error(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            &format!(
                "the answer was not ready within {} ms; the request was abandoned",
                limit.as_millis()
            ),
        ),
    }
}

async fn not_found(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let response = json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    state.metrics.record_request(
        "unmatched",
        method_of(request.method()),
        404,
        std::time::Duration::ZERO,
    );
    response
}

async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}
