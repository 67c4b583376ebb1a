//! The HTTP API of the sidecar (WIRE.md): health, resolve, migrate-resolve, metrics.
#![allow(
    clippy::result_large_err,
    reason = "a rejection is the response to send, as in axum"
)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use agent_identity::layer::{ContextExtractor, ResolveLayer, Resolved, json_error, no_store};
use agent_identity::{
    InvalidInput, MigrationRequest, OffsetDateTime, PairDenial, RequestContext, Router,
    format_rfc3339,
};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub mod health;
pub mod metrics;
pub mod oauth;
pub mod settings;

use crate::auth::{Authenticator, Caller};
use health::HealthMonitor;
use metrics::Metrics;
use settings::ServerSettings;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The router.
    pub router: Arc<Router>,
    /// The latest store health.
    pub health: Arc<HealthMonitor>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and listener settings.
    pub settings: Arc<ServerSettings>,
    /// Caller authentication.
    pub authenticator: Arc<Authenticator>,
    /// The address actually bound (its port is part of the accepted `Host` values).
    pub bound: SocketAddr,
    /// The `/oauth/` endpoints, when an `oauth` store is configured.
    pub oauth: oauth::OAuthState,
}

impl AppState {
    /// Prepares authentication (fetching a JWKS now, so that a bad source fails at start) and
    /// checks the stores once, for a server bound to `bound`.
    /// (A loaded configuration gives these parts: `config::Loaded::into_state`.)
    pub async fn new(
        router: Router,
        settings: ServerSettings,
        auth: crate::auth::settings::AuthSettings,
        oauth: oauth::OAuthState,
        metrics: Arc<Metrics>,
        bound: SocketAddr,
    ) -> Result<Self, String> {
        let authenticator = Arc::new(Authenticator::new(auth).await?);
        let router = Arc::new(router);
        let health = HealthMonitor::start(router.clone()).await;
        Ok(Self {
            router,
            health,
            metrics,
            settings: Arc::new(settings),
            authenticator,
            bound,
            oauth,
        })
    }
}

/// The sidecar's HTTP application.
pub fn app(state: AppState) -> axum::Router {
    let limit = state.settings.body_limit_bytes;
    let api = axum::Router::new()
        .route(
            "/api/resolve",
            post(resolved).layer(ResolveLayer::new(
                state.router.clone(),
                JsonContext { limit },
            )),
        )
        .route("/api/migrate/resolve", post(migrate));
    // Users manage their connections as themselves; the callback is authenticated by its
    // sealed flow cookie instead (a browser coming back from a provider carries no token).
    let oauth = axum::Router::new()
        .route("/oauth/connections", get(oauth::connections))
        .route("/oauth/{provider}/connect", get(oauth::connect))
        .route("/oauth/{provider}/disconnect", post(oauth::disconnect))
        .route("/oauth/{provider}/token", post(oauth::api_token));
    let callback = axum::Router::new()
        .route("/oauth/{provider}/callback", get(oauth::callback))
        .with_state(state.oauth.clone());
    // With no authentication configured every caller is anonymous: no middleware to run.
    let (api, oauth) = if matches!(*state.authenticator, Authenticator::None) {
        (api, oauth)
    } else {
        let layer = from_fn_with_state(state.authenticator.clone(), crate::auth::authenticate);
        (api.route_layer(layer.clone()), oauth.route_layer(layer))
    };
    let oauth = oauth.with_state(state.oauth.clone()).merge(callback);
    let guard = Arc::new(Guard::new(&state.settings, state.bound));
    let in_flight = Arc::new(Semaphore::new(state.settings.max_in_flight));
    let timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        state.settings.request_timeout(),
    );
    let metrics = state.metrics.clone();
    axum::Router::new()
        .route("/health", get(health))
        .route("/api/health", get(health))
        .route("/metrics", get(metrics_text))
        .merge(api)
        .merge(oauth)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(timeout)
        .layer(from_fn(move |request: Request, next: Next| {
            let metrics = metrics.clone();
            async move { record(metrics, request, next).await }
        }))
        .layer(from_fn(move |request: Request, next: Next| {
            let in_flight = in_flight.clone();
            async move {
                // Refuse rather than queue: a queued request only times out later.
                let Ok(_permit) = in_flight.try_acquire() else {
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
        }))
        .layer(from_fn(move |request: Request, next: Next| {
            let guard = guard.clone();
            async move { guard.check(request, next).await }
        }))
}

/// The route label of a path: the route it matches, or `unmatched` (bounded label values).
fn route_of(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/api/health" => "/api/health",
        "/api/resolve" => "/api/resolve",
        "/api/migrate/resolve" => "/api/migrate/resolve",
        "/metrics" => "/metrics",
        "/oauth/connections" => "/oauth/connections",
        _ if path.starts_with("/oauth/") => match path.rsplit('/').next() {
            Some("connect") => "/oauth/{provider}/connect",
            Some("callback") => "/oauth/{provider}/callback",
            Some("disconnect") => "/oauth/{provider}/disconnect",
            Some("token") => "/oauth/{provider}/token",
            _ => "unmatched",
        },
        _ => "unmatched",
    }
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

async fn record(metrics: Arc<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_of(request.uri().path());
    let method = method_of(request.method());
    let response = next.run(request).await;
    metrics.record_request(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// Refuses requests whose `Host` or `Origin` is not accepted, before reading their body: a
/// browser page on another site must not reach a loopback sidecar through DNS rebinding.
#[derive(Debug)]
struct Guard {
    /// Accepted `Host` values, lower case; `None` accepts any.
    hosts: Option<HashSet<String>>,
    origins: HashSet<String>,
}

impl Guard {
    fn new(settings: &ServerSettings, bound: SocketAddr) -> Self {
        let mut hosts: HashSet<String> = settings
            .allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        // Beyond loopback (0.0.0.0 included) callers authenticate, so a rebinding page has
        // nothing to use; any Host is accepted there unless `allowed_hosts` says otherwise.
        let hosts = if bound.ip().is_loopback() || !hosts.is_empty() {
            let port = bound.port();
            for name in ["127.0.0.1", "localhost", "[::1]"] {
                hosts.insert(format!("{name}:{port}"));
                if port == 80 {
                    hosts.insert(name.to_owned());
                }
            }
            Some(hosts)
        } else {
            None
        };
        let origins = settings
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        Self { hosts, origins }
    }

    async fn check(&self, request: Request, next: Next) -> Response {
        if let Some(hosts) = &self.hosts {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok());
            let accepted = |host: &str| {
                // Lower-case only when needed: the common Host is lower case already.
                if host.bytes().any(|b| b.is_ascii_uppercase()) {
                    hosts.contains(&host.to_ascii_lowercase())
                } else {
                    hosts.contains(host)
                }
            };
            match host {
                Some(host) if accepted(host) => {}
                Some(_) => {
                    return json_error(
                        StatusCode::FORBIDDEN,
                        "host_not_allowed",
                        "this server does not answer for that Host",
                    );
                }
                None => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "the request has no Host header",
                    );
                }
            }
        }
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let origin = origin
                .to_str()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_ascii_lowercase();
            if !self.origins.contains(&origin) {
                return json_error(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    "cross-origin requests are not accepted",
                );
            }
        }
        next.run(request).await
    }
}

async fn health(State(state): State<AppState>) -> Response {
    let snapshot = state.health.snapshot();
    let healthy = snapshot.unavailable.is_empty();
    let rules = state.router.rule_count();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "ok": healthy,
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": format_rfc3339(OffsetDateTime::now_utc()),
        "credentialsLoaded": snapshot.credential_count,
        "rulesLoaded": rules,
        "credentialCount": snapshot.credential_count,
        "ruleCount": rules,
        "unavailableStores": snapshot.unavailable,
        "checkedAt": format_rfc3339(snapshot.checked_at),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store((status, Json(body)).into_response())
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// The body of a granted `POST /api/resolve`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResolveAnswer {
    ok: bool,
    credential_id: String,
    resolved_for: String,
    expires_at: Option<String>,
}

/// `POST /api/resolve`, after the resolve layer granted a credential.
async fn resolved(Resolved(resolution): Resolved) -> Response {
    Json(ResolveAnswer {
        ok: true,
        credential_id: resolution.credential_id,
        resolved_for: resolution.resolved_for,
        expires_at: resolution.expires_at.map(format_rfc3339),
    })
    .into_response()
}

/// Reads the request context from a JSON body, for the resolve layer.
#[derive(Debug, Clone)]
struct JsonContext {
    limit: usize,
}

impl ContextExtractor for JsonContext {
    async fn extract(
        &self,
        request: Request<Body>,
    ) -> Result<(RequestContext, Request<Body>), Response> {
        let (parts, body) = request.into_parts();
        let body = read_json_body(&parts, body, self.limit).await?;
        let mut context = RequestContext::from_slice(&body).map_err(|err| invalid(&err))?;
        check_caller(&parts, &context.user_id)?;
        context.subject_token = subject_token(&parts);
        Ok((context, Request::from_parts(parts, Body::empty())))
    }
}

/// `POST /api/migrate/resolve`.
async fn migrate(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_json_body(&parts, body, state.settings.body_limit_bytes).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut migration = match MigrationRequest::from_slice(&body) {
        Ok(migration) => migration,
        Err(err) => return invalid(&err),
    };
    if let Err(response) = check_caller(&parts, &migration.user_id) {
        return response;
    }
    migration.subject_token = subject_token(&parts);
    match state.router.resolve_pair(&migration).await {
        Ok(pair) => no_store(
            Json(json!({
                "migrationId": pair.migration_id,
                "phase": pair.phase,
                "sourceCredentialId": pair.source.credential_id,
                "sourceResolvedFor": pair.source.resolved_for,
                "targetCredentialId": pair.target.credential_id,
                "targetResolvedFor": pair.target.resolved_for,
                "dryRun": pair.dry_run,
                "expiresAt": pair.expires_at.map(format_rfc3339),
            }))
            .into_response(),
        ),
        Err(denial) => pair_denied(&denial),
    }
}

fn pair_denied(denial: &PairDenial) -> Response {
    let (side, code) = match (&denial.source, &denial.target) {
        (Some(source), Some(_)) => ("both", source.reason.code()),
        (Some(source), None) => ("source", source.reason.code()),
        (None, Some(target)) => ("target", target.reason.code()),
        (None, None) => ("both", "denied"),
    };
    let body = json!({ "error": denial.to_string(), "code": code, "side": side });
    no_store((StatusCode::FORBIDDEN, Json(body)).into_response())
}

/// The caller's own token, when authentication found one (never from the body).
fn subject_token(parts: &Parts) -> Option<agent_identity::SubjectToken> {
    parts
        .extensions
        .get::<Caller>()
        .and_then(|caller| caller.subject_token.clone())
}

/// The request names `user_id`; an authenticated caller bound to another user may not ask.
fn check_caller(parts: &Parts, user_id: &str) -> Result<(), Response> {
    match parts
        .extensions
        .get::<Caller>()
        .and_then(|c| c.user_id.as_deref())
    {
        Some(bound) if bound != user_id => Err(json_error(
            StatusCode::FORBIDDEN,
            "caller_user_mismatch",
            "the request names a different user than the authenticated caller",
        )),
        _ => Ok(()),
    }
}

/// A 400 listing each bad field.
fn invalid(err: &InvalidInput) -> Response {
    let details: serde_json::Map<String, Value> = err
        .problems
        .iter()
        .map(|p| (p.field.clone(), Value::String(p.problem.to_string())))
        .collect();
    let body = json!({ "error": err.to_string(), "code": "invalid_request", "details": details });
    no_store((StatusCode::BAD_REQUEST, Json(body)).into_response())
}

/// True for `application/json` and `application/<anything>+json`, parameters and case aside.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .as_bytes();
    let starts = |prefix: &[u8]| {
        essence.len() >= prefix.len() && essence[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let ends = |suffix: &[u8]| {
        essence.len() >= suffix.len()
            && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    essence.eq_ignore_ascii_case(b"application/json") || (starts(b"application/") && ends(b"+json"))
}

/// Reads a JSON body of at most `limit` bytes (parsing it is the caller's part).
pub(crate) async fn read_json_body(
    parts: &Parts,
    body: Body,
    limit: usize,
) -> Result<Bytes, Response> {
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE)
        && !is_json(content_type.to_str().unwrap_or(""))
    {
        return Err(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!("the body is larger than {limit} bytes"),
        )
    };
    if let Some(length) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large());
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let over = std::error::Error::source(&err)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            return Err(if over {
                too_large()
            } else {
                json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the body could not be read",
                )
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is empty; send a JSON object",
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/vnd.api+json ",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "json",
            "",
            "application/jsonx",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }
}
