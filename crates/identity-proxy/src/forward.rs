//! [`Proxy`]: one call to an upstream, with the resolved credential put in.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::record::{Metered, Report};
use crate::usage::UsageScanner;
use crate::{CallObserver, Injection, ProxiedCall, Upstream};
use axum::body::{Body, HttpBody as _};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use identity_core::{Error, InvalidInput, RequestContext, Secret, SubjectToken};
use identity_router::{Call, Denial, Intent, Purpose, Router};

/// The largest request body kept to be sent again after a 401.
const REPLAYABLE_BYTES: u64 = 64 * 1024;

/// Headers that name the routing context of a proxied call (and are never passed on).
pub const CONTEXT_HEADER_PREFIX: &str = "x-agent-identity-";

/// Headers a caller may use to authenticate itself: never passed on to an upstream.
const CALLER_CREDENTIALS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1), never passed on in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Why a call was not proxied. Each maps to one status; none carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// No upstream of that name (404).
    #[error("no upstream `{0}` is configured")]
    UnknownUpstream(String),
    /// The method is not allowed on that upstream (405).
    #[error("this upstream does not accept that method")]
    MethodNotAllowed,
    /// The path is outside the upstream's allowed prefixes, or not a clean path (403).
    #[error("this upstream does not serve that path")]
    PathNotAllowed,
    /// The routing context from the headers is not valid (400).
    #[error(transparent)]
    Context(Box<InvalidInput>),
    /// An authenticated caller bound to one user named another (403).
    #[error("the request names a different user than the authenticated caller")]
    CallerMismatch,
    /// The credential the router chose holds no secret to inject (403).
    #[error("the credential chosen holds no secret")]
    NoSecret,
    /// The router refused (403, with the denial's code).
    #[error(transparent)]
    Denied(Box<Denial>),
    /// The request body is larger than the upstream accepts (413).
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
    /// The upstream did not answer in time (504).
    #[error("the upstream did not answer in time")]
    Timeout,
    /// The upstream could not be reached, refused the address policy, or answered a redirect
    /// (502).
    #[error("the upstream could not be reached")]
    Unreachable,
}

impl ProxyError {
    /// The HTTP status this error answers with.
    ///
    /// ```
    /// assert_eq!(identity_proxy::ProxyError::Timeout.status(), http::StatusCode::GATEWAY_TIMEOUT);
    /// ```
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::UnknownUpstream(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PathNotAllowed | Self::Denied(_) | Self::CallerMismatch | Self::NoSecret => {
                StatusCode::FORBIDDEN
            }
            Self::Context(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Unreachable => StatusCode::BAD_GATEWAY,
        }
    }

    /// The machine code of the error body.
    ///
    /// ```
    /// assert_eq!(identity_proxy::ProxyError::Unreachable.code(), "upstream_unreachable");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownUpstream(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PathNotAllowed => "path_not_allowed",
            Self::CallerMismatch => "caller_user_mismatch",
            Self::NoSecret => "credential_has_no_secret",
            Self::Context(_) => "invalid_request",
            Self::Denied(denial) => denial.reason.code(),
            Self::TooLarge(_) => "body_too_large",
            Self::Timeout => "upstream_timeout",
            Self::Unreachable => "upstream_unreachable",
        }
    }
}

/// Who is calling, as the embedding server authenticated it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Caller {
    /// The user the caller is bound to: the only user it may act for.
    pub user_id: Option<String>,
    /// The caller's own token, for stores that exchange it.
    pub subject_token: Option<SubjectToken>,
    /// The workload the caller proved it is (a SPIFFE ID): the context's `spiffeId`.
    pub workload: Option<String>,
    /// The workload's own token (a JWT-SVID), for stores that delegate (the actor token).
    pub actor_token: Option<SubjectToken>,
    /// The caller's name (an API key's, a workload's): the requester of approvals, who cannot
    /// approve its own calls.
    pub name: Option<String>,
}

impl Caller {
    /// A caller bound to `user_id`, or to none.
    ///
    /// ```
    /// let caller = identity_proxy::Caller::new(Some("alice".into()), None);
    /// assert_eq!(caller.user_id.as_deref(), Some("alice"));
    /// ```
    pub fn new(user_id: Option<String>, subject_token: Option<SubjectToken>) -> Self {
        Self {
            user_id,
            subject_token,
            workload: None,
            actor_token: None,
            name: None,
        }
    }

    /// The same caller, known as `name`.
    ///
    /// ```
    /// let caller = identity_proxy::Caller::new(None, None).with_name("agent-a");
    /// assert_eq!(caller.name.as_deref(), Some("agent-a"));
    /// ```
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The same caller, proven to be `workload` (a SPIFFE ID).
    ///
    /// ```
    /// let caller = identity_proxy::Caller::new(None, None).with_workload("spiffe://prod/agent");
    /// assert_eq!(caller.workload.as_deref(), Some("spiffe://prod/agent"));
    /// ```
    #[must_use]
    pub fn with_workload(mut self, workload: impl Into<String>) -> Self {
        self.workload = Some(workload.into());
        self
    }

    /// The same caller, with the workload's own token to act with (RFC 8693 `actor_token`).
    ///
    /// ```
    /// use identity_core::{Secret, SubjectToken};
    /// let caller = identity_proxy::Caller::new(None, None)
    ///     .with_actor_token(SubjectToken::new(Secret::new("eyJ...")));
    /// assert!(caller.actor_token.is_some());
    /// ```
    #[must_use]
    pub fn with_actor_token(mut self, token: SubjectToken) -> Self {
        self.actor_token = Some(token);
        self
    }
}

/// The injection proxy: resolves the routing context of each call with the router, as
/// `/api/resolve` does, then sends the call to its upstream with the credential put in and the
/// caller's own credentials taken out, and streams the answer back. See the
/// [crate documentation](crate).
#[derive(Debug, Clone)]
pub struct Proxy {
    router: Arc<Router>,
    upstreams: Arc<HashMap<String, Upstream>>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl Proxy {
    /// A proxy resolving with `router`, to `upstreams`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new()).build()?;
    /// let proxy = identity_proxy::Proxy::new(Arc::new(router), []);
    /// assert!(proxy.upstream("github").is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(router: Arc<Router>, upstreams: impl IntoIterator<Item = Upstream>) -> Self {
        Self {
            router,
            upstreams: Arc::new(
                upstreams
                    .into_iter()
                    .map(|u| (u.name.to_string(), u))
                    .collect(),
            ),
            observer: None,
        }
    }

    /// Tells `observer` of every call when it ends (metrics per upstream).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// #[derive(Debug)]
    /// struct Ignore;
    /// impl identity_proxy::CallObserver for Ignore {
    ///     fn call_ended(&self, _: &identity_proxy::ProxiedCall) {}
    /// }
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new()).build()?;
    /// let proxy = identity_proxy::Proxy::new(Arc::new(router), []).with_observer(Arc::new(Ignore));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The upstream named `name`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let config: identity_proxy::UpstreamConfig = serde_json::from_value(serde_json::json!({
    ///     "base_url": "https://api.github.com", "provider": "github"
    /// }))?;
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new()).build()?;
    /// let proxy = identity_proxy::Proxy::new(Arc::new(router), [identity_proxy::Upstream::new("github", config)?]);
    /// assert_eq!(proxy.upstream("github").map(|u| u.name()), Some("github"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.get(name)
    }

    /// Proxies `request` to upstream `upstream` at `path` (what follows `/proxy/<upstream>`),
    /// for `caller`. The request's own URI is not used but for its query.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new()).build().unwrap();
    /// let proxy = identity_proxy::Proxy::new(Arc::new(router), []);
    /// let request = http::Request::new(axum::body::Body::empty());
    /// let err = proxy.forward("github", "/user", identity_proxy::Caller::default(), request).await.unwrap_err();
    /// assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
    /// # });
    /// ```
    pub async fn forward(
        &self,
        upstream: &str,
        path: &str,
        caller: Caller,
        request: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let started = Instant::now();
        let upstream = self
            .upstreams
            .get(upstream)
            .ok_or_else(|| ProxyError::UnknownUpstream(upstream.to_owned()))?;
        let path = clean_path(path).ok_or(ProxyError::PathNotAllowed)?;
        let (parts, body) = request.into_parts();
        upstream.allows(&parts.method, &path)?;
        if parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|length| length > upstream.max_request_bytes)
        {
            return Err(ProxyError::TooLarge(upstream.max_request_bytes));
        }
        let requester = caller.name.clone();
        let context = context(upstream, &parts.method, &parts.headers, caller)?;
        // A small body is read before the credential is resolved: an approval binds to its
        // digest, and a call refused with a 401 can be sent again once with a fresh
        // credential. A larger one streams, is sent once, and cannot be approved. Kept only
        // when its exact size is known and small (no body, or a declared length).
        let keep = REPLAYABLE_BYTES.min(upstream.max_request_bytes);
        let mut replay = None;
        let mut streamed = None;
        if body
            .size_hint()
            .exact()
            .is_some_and(|length| length <= keep)
        {
            let bytes = axum::body::to_bytes(body, usize::try_from(keep).unwrap_or(usize::MAX))
                .await
                .map_err(|_| ProxyError::TooLarge(upstream.max_request_bytes))?;
            replay = Some(bytes);
        } else {
            streamed = Some(body);
        }
        let mut call = Call::new(&*upstream.name, parts.method.as_str(), path.as_str());
        if let Some(query) = parts.uri.query() {
            call = call.with_query(query);
        }
        if let Some(bytes) = &replay {
            call = call.with_body(bytes);
        }
        let mut intent = Intent::new(Purpose::Proxy(call));
        intent.requester = requester;
        let resolution = self
            .router
            .resolve_for(&context, &intent)
            .await
            .map_err(|denial| ProxyError::Denied(Box::new(denial)))?;
        let mut resolution = resolution;
        let mut secret = resolution.secret().cloned().ok_or(ProxyError::NoSecret)?;
        let forwarded = forwarded_headers(&parts.headers, &upstream.inject);
        let over = Arc::new(AtomicBool::new(false));
        let mut retried = false;
        let (response, sent) = loop {
            let mut url = upstream.url(&path, parts.uri.query());
            let mut headers = forwarded.clone();
            inject(&upstream.inject, &secret, &mut headers, &mut url);
            let sent = Arc::new(AtomicU64::new(0));
            let body = match (&replay, streamed.take()) {
                (Some(bytes), _) => {
                    sent.store(bytes.len() as u64, Ordering::Relaxed);
                    reqwest::Body::from(bytes.clone())
                }
                (None, Some(body)) => {
                    capped(body, upstream.max_request_bytes, over.clone(), sent.clone())
                }
                (None, None) => reqwest::Body::from(Vec::new()),
            };
            let request = upstream
                .http
                .request(parts.method.clone(), &url)
                .headers(headers)
                .body(body);
            let response = match upstream.http.stream(request, "upstream").await {
                Ok(response) => response,
                Err(_) if over.load(Ordering::SeqCst) => {
                    return Err(ProxyError::TooLarge(upstream.max_request_bytes));
                }
                Err(err) => {
                    let timeout = matches!(&err, Error::Unavailable { source: Some(source), .. }
                        if source.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_timeout));
                    self.report(upstream, &parts.method, &path, &resolution, started, sent)
                        .end();
                    return Err(if timeout {
                        ProxyError::Timeout
                    } else {
                        ProxyError::Unreachable
                    });
                }
            };
            // An approved call is made once: a retry would need an approval of its own.
            if response.status() != http::StatusCode::UNAUTHORIZED
                || retried
                || replay.is_none()
                || resolution.was_approved()
            {
                break (response, sent);
            }
            // Refused: the store forgets that credential, and the call goes again once with a
            // fresh one. Should that fail to resolve, the 401 stands.
            retried = true;
            let mut refused = self.report(
                upstream,
                &parts.method,
                &path,
                &resolution,
                started,
                sent.clone(),
            );
            refused.call.status = Some(401);
            refused.end();
            if self
                .router
                .forget_refused(&resolution, &context)
                .await
                .is_err()
            {
                break (response, sent);
            }
            match self.router.resolve_for(&context, &intent).await {
                Ok(fresh) => match fresh.secret().cloned() {
                    Some(fresh_secret) => {
                        secret = fresh_secret;
                        resolution = fresh;
                    }
                    None => break (response, sent),
                },
                Err(_) => break (response, sent),
            }
        };
        let status = response.status();
        let mut report = self.report(upstream, &parts.method, &path, &resolution, started, sent);
        report.call.status = Some(status.as_u16());
        // The answer's usage is read only for a resolution that someone meters (a spend budget).
        if resolution.is_metered()
            && let Some(scanner) = UsageScanner::for_answer(status, response.headers())
        {
            report = report.metering(scanner, resolution.meters());
        }
        let mut answer = Response::builder().status(status);
        if let Some(headers) = answer.headers_mut() {
            *headers = answered_headers(response.headers(), &secret);
        }
        // The call is reported when its answer has been passed on, with the bytes it carried.
        let body = Metered::new(Box::pin(response.bytes_stream()), report);
        answer
            .body(Body::from_stream(body))
            .map_err(|_| ProxyError::Unreachable)
    }

    /// The report of a call to `upstream` with `resolution`'s credential, not yet ended.
    fn report(
        &self,
        upstream: &Upstream,
        method: &Method,
        path: &str,
        resolution: &identity_router::Resolution,
        started: Instant,
        sent: Arc<AtomicU64>,
    ) -> Report {
        let call = ProxiedCall {
            upstream: upstream.name.clone(),
            method: method.clone(),
            path: path.to_owned(),
            rule_id: resolution.rule_id.clone(),
            credential_id: resolution.credential_id.clone(),
            resolved_for: resolution.resolved_for.clone(),
            status: None,
            bytes_sent: 0,
            bytes_received: 0,
            complete: false,
            duration: Duration::ZERO,
        };
        Report::new(call, started, sent, self.observer.clone()).holding(resolution.holds())
    }
}

impl Proxy {
    /// This proxy as an axum router (a tower service) answering `/{upstream}/{*path}` for any
    /// method, to nest where a backend wants it (`.nest("/proxy", proxy.into_router())`). The
    /// caller is the [`Caller`] the backend's own authentication put in the request's
    /// extensions, or an anonymous one. Refusals answer `{"error", "code"}` with their status.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new()).build()?;
    /// let app: axum::Router = axum::Router::new()
    ///     .nest("/proxy", identity_proxy::Proxy::new(Arc::new(router), []).into_router());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_router(self) -> axum::Router {
        let handler =
            move |axum::extract::Path((upstream, path)): axum::extract::Path<(String, String)>,
                  request: Request<Body>| {
                let proxy = self.clone();
                async move {
                    let caller = request
                        .extensions()
                        .get::<Caller>()
                        .cloned()
                        .unwrap_or_default();
                    match proxy.forward(&upstream, &path, caller, request).await {
                        Ok(response) => response,
                        Err(err) => error_response(&err),
                    }
                }
            };
        axum::Router::new().route("/{upstream}/{*path}", axum::routing::any(handler))
    }
}

/// `{"error", "code"}` with the error's status, not to be cached.
fn error_response(err: &ProxyError) -> Response<Body> {
    let body = serde_json::json!({ "error": err.to_string(), "code": err.code() }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = err.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The routing context of a proxied call: the caller's binding and token, the
/// `x-agent-identity-*` headers, the upstream's defaults.
fn context(
    upstream: &Upstream,
    method: &Method,
    headers: &HeaderMap,
    caller: Caller,
) -> Result<RequestContext, ProxyError> {
    let named = |name: &str| {
        headers
            .get(format!("{CONTEXT_HEADER_PREFIX}{name}"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut builder = RequestContext::builder()
        .provider(upstream.provider.clone())
        .resource_id(named("resource").unwrap_or_else(|| upstream.resource.clone()))
        .model(named("model").unwrap_or_else(|| "none".to_owned()))
        .action(named("action").unwrap_or_else(|| {
            if matches!(*method, Method::GET | Method::HEAD) {
                "read".to_owned()
            } else {
                "write".to_owned()
            }
        }))
        .trace_id(named("trace").unwrap_or_else(trace_id));
    builder = match named("resource-kind") {
        Some(kind) => match kind.parse::<identity_core::ResourceKind>() {
            Ok(kind) => builder.resource_kind(kind),
            Err(_) => builder,
        },
        None => builder.resource_kind(upstream.resource_kind),
    };
    // A caller bound to a user acts for that user only; the header may not say otherwise.
    let user = match (caller.user_id, named("user")) {
        (Some(bound), Some(asked)) if bound != asked => return Err(ProxyError::CallerMismatch),
        (Some(bound), _) => Some(bound),
        (None, asked) => asked,
    };
    if let Some(user) = user {
        builder = builder.user_id(user);
    }
    if let Some(token) = caller.subject_token {
        builder = builder.subject_token(token);
    }
    if let Some(workload) = caller.workload {
        builder = builder.spiffe_id(workload);
    }
    if let Some(token) = caller.actor_token {
        builder = builder.actor_token(token);
    }
    builder
        .build()
        .map_err(|err| ProxyError::Context(Box::new(err)))
}

/// A fresh trace id: 16 random bytes in hex.
fn trace_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        return "proxy".to_owned();
    }
    // Written into one string: a `format!` per byte showed in the proxy's profile.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

/// `path` if it is a clean absolute path: no `.` or `..` segment, no backslash, no encoded
/// slash or dot that an upstream could decode into one.
fn clean_path(path: &str) -> Option<String> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let lowered = path.to_ascii_lowercase();
    let unsafe_segment = path
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    if unsafe_segment
        || path.contains('\\')
        || lowered.contains("%2f")
        || lowered.contains("%2e")
        || lowered.contains("%5c")
    {
        return None;
    }
    Some(path)
}

/// The request headers passed on: all but hop-by-hop ones, those a caller authenticates with,
/// the context headers, and the header the credential goes into.
fn forwarded_headers(incoming: &HeaderMap, injection: &Injection) -> HeaderMap {
    let listed: Vec<String> = incoming
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let injected = match injection {
        Injection::Header { name, .. } => Some(name.to_ascii_lowercase()),
        _ => None,
    };
    let mut headers = HeaderMap::new();
    for (name, value) in incoming {
        let lower = name.as_str();
        let dropped = HOP_BY_HOP.contains(&lower)
            || CALLER_CREDENTIALS.contains(&lower)
            || lower.starts_with(CONTEXT_HEADER_PREFIX)
            || listed.iter().any(|l| l == lower)
            || injected.as_deref() == Some(lower);
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// Puts the credential where the upstream expects it; the header is marked sensitive.
fn inject(injection: &Injection, secret: &Secret, headers: &mut HeaderMap, url: &mut url::Url) {
    let sensitive = |text: String| {
        HeaderValue::from_str(&text).ok().map(|mut value| {
            value.set_sensitive(true);
            value
        })
    };
    let secret = secret.expose_secret();
    match injection {
        Injection::Bearer => {
            if let Some(value) = sensitive(format!("Bearer {secret}")) {
                headers.insert(header::AUTHORIZATION, value);
            }
        }
        Injection::Basic { username } => {
            let encoded = STANDARD.encode(format!("{username}:{secret}"));
            if let Some(value) = sensitive(format!("Basic {encoded}")) {
                headers.insert(header::AUTHORIZATION, value);
            }
        }
        Injection::Header { name, prefix } => {
            if let (Ok(name), Some(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                sensitive(format!("{prefix}{secret}")),
            ) {
                headers.insert(name, value);
            }
        }
        Injection::Query { name } => {
            url.query_pairs_mut().append_pair(name, secret);
        }
    }
}

/// The answer's headers passed back: all but hop-by-hop ones and any that carries the secret.
fn answered_headers(incoming: &HeaderMap, secret: &Secret) -> HeaderMap {
    let secret = secret.expose_secret().as_bytes();
    let carries = |value: &HeaderValue| {
        !secret.is_empty()
            && value
                .as_bytes()
                .windows(secret.len())
                .any(|window| window == secret)
    };
    let mut headers = HeaderMap::new();
    for (name, value) in incoming {
        if !HOP_BY_HOP.contains(&name.as_str()) && !carries(value) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// The request body, streamed on, cut with an error past `max` bytes (`over` then says so);
/// `sent` counts what has passed.
fn capped(body: Body, max: u64, over: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> reqwest::Body {
    let mut seen = 0u64;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len() as u64;
        sent.store(seen, Ordering::Relaxed);
        if seen > max {
            over.store(true, Ordering::SeqCst);
            return Err(std::io::Error::other("the request body is too large"));
        }
        Ok(chunk)
    });
    reqwest::Body::wrap_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::clean_path;

    #[test]
    fn paths_that_could_climb_out_of_the_upstream_base_are_refused() {
        assert_eq!(clean_path("repos/a/b").as_deref(), Some("/repos/a/b"));
        assert_eq!(
            clean_path("/v1/chat/completions").as_deref(),
            Some("/v1/chat/completions")
        );
        for bad in [
            "/../admin",
            "/a/./b",
            "/a/%2e%2e/b",
            "/a%2Fb",
            "/a\\b",
            "/a/%5c",
        ] {
            assert!(clean_path(bad).is_none(), "{bad}");
        }
    }
}
