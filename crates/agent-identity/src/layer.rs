//! Resolution inside a backend's own axum handlers: a tower layer and an extractor.
//!
//! [`ResolveLayer`] wraps a route: for each request it reads the request context with a
//! [`ContextExtractor`] the application supplies, resolves it with the [`Router`], and either
//! hands the [`Resolved`] credential to the handler or answers `403` with a JSON body
//! (`{"error": "<sentence>", "code": "<denial code>"}`) without calling it.
//!
//! ```
//! use std::sync::Arc;
//! use agent_identity::layer::{ResolveLayer, Resolved};
//! use agent_identity::{Credential, CredentialKind, MemoryCredentialStore, RequestContext,
//!                      ResourceKind, Router, RoutingRule, Secret};
//! use http::StatusCode;
//!
//! /// The application knows who calls and what for: here, from headers its own auth has set.
//! fn context(parts: &http::request::Parts) -> Result<RequestContext, StatusCode> {
//!     let user = parts.headers.get("x-user").and_then(|v| v.to_str().ok()).unwrap_or("anonymous");
//!     RequestContext::builder()
//!         .user_id(user).resource_id("crm").resource_kind(ResourceKind::Shared)
//!         .provider("openai").model("gpt-4o").action("read").trace_id("t")
//!         .build()
//!         .map_err(|_| StatusCode::BAD_REQUEST)
//! }
//!
//! async fn call_crm(Resolved(resolution): Resolved) -> String {
//!     // resolution.secret() goes into the outgoing call, never into this response.
//!     format!("called the CRM as {}", resolution.resolved_for)
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryCredentialStore::new();
//! store.insert(Credential::new("crm-bot", CredentialKind::Fixed, "crm")?.with_secret(Secret::new("k")));
//! let router = Arc::new(Router::builder().default_store(store)
//!     .rule(RoutingRule::new("crm", "crm").with_priority(1)).build()?);
//! let app: axum::Router = axum::Router::new()
//!     .route("/crm", axum::routing::get(call_crm))
//!     .layer(ResolveLayer::new(router, context));
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode, header};
use identity_core::RequestContext;
use identity_router::{Denial, Resolution, Router};
use tower::{Layer, Service};

/// Reads the [`RequestContext`] of a request, for [`ResolveLayer`].
///
/// It receives the whole request and gives it back, so that an extractor may read the body (and
/// put the bytes back) as well as the headers. A rejection is the response to send instead.
/// Any `Fn(&Parts) -> Result<RequestContext, R>` closure is an extractor, where the rejection
/// `R` is anything that is a response (a status code, a `(StatusCode, &str)` pair, ...).
pub trait ContextExtractor: Clone + Send + Sync + 'static {
    /// Reads the context, or answers the request itself.
    fn extract(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<(RequestContext, Request<Body>), Response>> + Send;
}

impl<F, R> ContextExtractor for F
where
    F: Fn(&Parts) -> Result<RequestContext, R> + Clone + Send + Sync + 'static,
    R: IntoResponse,
{
    fn extract(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<(RequestContext, Request<Body>), Response>> + Send {
        let (parts, body) = request.into_parts();
        let outcome = match self(&parts) {
            Ok(context) => Ok((context, Request::from_parts(parts, body))),
            Err(rejection) => Err(rejection.into_response()),
        };
        std::future::ready(outcome)
    }
}

/// The credential resolved for this request, and the context it was resolved for: what
/// [`ResolveLayer`] puts in the request's extensions, and the extractor handlers take.
///
/// `Debug` shows no secret. Without the layer on the route, extracting it answers `500`.
#[derive(Debug, Clone)]
pub struct Resolved(pub Resolution);

/// The context a [`Resolved`] credential was resolved for; also in the request's extensions.
#[derive(Debug, Clone)]
pub struct ResolvedContext(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Resolved {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Taken, not cloned: a handler extracts its resolution once.
        parts.extensions.remove::<Resolved>().ok_or_else(|| {
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server could not handle this request",
            )
        })
    }
}

/// The response to a denied resolution: `403` with `{"error": "<sentence>", "code": "<code>"}`.
///
/// ```
/// let response = agent_identity::layer::denial_response(&agent_identity::Denial::no_matching_rule());
/// assert_eq!(response.status(), http::StatusCode::FORBIDDEN);
/// ```
pub fn denial_response(denial: &Denial) -> Response {
    json_error(
        StatusCode::FORBIDDEN,
        denial.reason.code(),
        &denial.to_string(),
    )
}

/// A JSON error response, `{"error": message, "code": code}`, not to be cached.
///
/// ```
/// let response = agent_identity::layer::json_error(http::StatusCode::BAD_REQUEST, "invalid_request", "bad");
/// assert_eq!(response.headers()["cache-control"], "no-store");
/// ```
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "code": code });
    no_store((status, axum::Json(body)).into_response())
}

/// Marks a response as not to be stored by any cache: everything credential-related is.
///
/// ```
/// let response = agent_identity::layer::no_store(axum::response::IntoResponse::into_response("x"));
/// assert_eq!(response.headers()["cache-control"], "no-store");
/// ```
pub fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A layer that resolves a credential for every request; see the [module documentation](self).
pub struct ResolveLayer<E> {
    router: Arc<Router>,
    extractor: E,
}

impl<E: ContextExtractor> ResolveLayer<E> {
    /// A layer resolving with `router`, reading contexts with `extractor`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use agent_identity::layer::ResolveLayer;
    /// let router = Arc::new(agent_identity::Router::builder().build().unwrap());
    /// let layer = ResolveLayer::new(router, |_: &http::request::Parts| {
    ///     Err::<agent_identity::RequestContext, _>(http::StatusCode::UNAUTHORIZED)
    /// });
    /// ```
    pub fn new(router: Arc<Router>, extractor: E) -> Self {
        Self { router, extractor }
    }
}

impl<E: Clone> Clone for ResolveLayer<E> {
    fn clone(&self) -> Self {
        Self {
            router: self.router.clone(),
            extractor: self.extractor.clone(),
        }
    }
}

impl<E> fmt::Debug for ResolveLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveLayer")
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl<S, E: Clone> Layer<S> for ResolveLayer<E> {
    type Service = ResolveService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveService {
            inner,
            router: self.router.clone(),
            extractor: self.extractor.clone(),
        }
    }
}

/// The service [`ResolveLayer`] makes.
pub struct ResolveService<S, E> {
    inner: S,
    router: Arc<Router>,
    extractor: E,
}

impl<S: Clone, E: Clone> Clone for ResolveService<S, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            router: self.router.clone(),
            extractor: self.extractor.clone(),
        }
    }
}

impl<S, E> fmt::Debug for ResolveService<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveService")
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl<S, E> Service<Request<Body>> for ResolveService<S, E>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    E: ContextExtractor,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one to call; keep a fresh clone for next time.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let router = self.router.clone();
        let extractor = self.extractor.clone();
        Box::pin(async move {
            let (context, mut request) = match extractor.extract(request).await {
                Ok(extracted) => extracted,
                Err(rejection) => return Ok(no_store(rejection)),
            };
            match router.resolve(&context).await {
                Ok(resolution) => {
                    request.extensions_mut().insert(Resolved(resolution));
                    request.extensions_mut().insert(ResolvedContext(context));
                    inner.call(request).await.map(no_store)
                }
                Err(denial) => Ok(denial_response(&denial)),
            }
        })
    }
}
