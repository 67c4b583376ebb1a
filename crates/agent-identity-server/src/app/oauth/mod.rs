//! The `/oauth/` endpoints: users connect their own accounts, see and end their connections,
//! and store personal API tokens.
//!
//! - `POST /oauth/{provider}/link` (authenticated): the backend mints a one-time connect link
//!   for one of its users (the `connect` module).
//! - `GET /oauth/{provider}/connect?ticket=` (the browser): a confirmation page naming the
//!   user and the provider; its button POSTs back, same-origin only, and starts the
//!   authorization code flow with PKCE. The flow (user, `state`, `nonce`, verifier, redirect
//!   URI) travels in a short-lived cookie sealed with AES-256-GCM, so any replica can finish it
//!   and nothing of it is readable or forgeable in the browser.
//! - `GET /oauth/{provider}/callback` (the browser, back from the provider): the cookie's flow
//!   is checked (`state`, RFC 9207 `iss`, its age), the code exchanged with the verifier, the
//!   tokens kept for the flow's user. The cookie is the authentication: only the browser that
//!   started the flow holds it.
//! - `POST /oauth/{provider}/disconnect` (authenticated): revokes at the provider, then forgets.
//! - `POST /oauth/{provider}/token` (authenticated): stores a personal API token (Kaggle).
//! - `GET /oauth/connections` (authenticated): each provider's status and expiry, never a token.
//!
//! The user is the authenticated caller's; a caller bound to no user (no authentication on
//! loopback, a service API key) names one with `userId`. A connection is never started for a
//! user named by the browser's request: only by a link the backend minted.

#![allow(
    clippy::result_large_err,
    reason = "a rejection is the response to send, as in axum"
)]

pub(crate) mod connect;

use std::sync::Arc;
use std::time::Duration;

use agent_identity::identity_oauth::{
    DelegatedTokenStore, PendingAuthorization, Pkce, Provider, TokenSet, check_callback,
};
use agent_identity::identity_seal::{Keyring, SealedBox};
use agent_identity::layer::json_error;
use agent_identity::{Error, OffsetDateTime, Secret};
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Caller;

/// How long a started flow may take to come back.
const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// The longest API token accepted.
const MAX_API_TOKEN: usize = 4096;

/// What the `/oauth/` endpoints need: the delegated-token store and its providers, where this
/// sidecar is reached, and the keys that seal flow cookies.
pub struct OAuthEndpoints {
    /// The store that keeps connections (also a store of the router).
    pub store: Arc<DelegatedTokenStore>,
    public_url: String,
    return_url: Option<url::Url>,
    keys: Keyring,
    secure_cookies: bool,
    /// The path of `public_url` (a proxy may serve the sidecar under one), cookies' paths start
    /// with it.
    base_path: String,
    /// Seal connect tickets.
    ticket_keys: Keyring,
    /// The ids of connect tickets already used, until they expire: each is good once.
    used_tickets: moka::sync::Cache<String, ()>,
    /// The permission policies asked before a connect link is made (`connect` on the
    /// provider), when policies are configured.
    policies: std::sync::OnceLock<Arc<agent_identity::identity_policy::PolicyGate>>,
}

impl std::fmt::Debug for OAuthEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthEndpoints")
            .field("store", &self.store)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// A flow between connect and callback, sealed in the browser's cookie.
#[derive(Serialize, Deserialize)]
struct Flow {
    user: String,
    provider: String,
    issuer: String,
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    resources: Vec<String>,
    /// Whether `openid` was asked for (the ID token is then verified).
    openid: bool,
    /// Whether the server always sends `iss` in its callbacks (RFC 9207).
    iss_required: bool,
    /// Unix time after which the flow is refused.
    expires: i64,
}

impl OAuthEndpoints {
    /// Endpoints for `store`'s providers, reached by browsers at `public_url`; after a callback
    /// browsers go to `return_url` when set. `keys` seal flow cookies.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use agent_identity::identity_oauth::{DelegatedTokenStore, MemoryTokens};
    /// use agent_identity_server::app::oauth::OAuthEndpoints;
    /// let store = Arc::new(DelegatedTokenStore::new(Arc::new(MemoryTokens::default())));
    /// let endpoints = OAuthEndpoints::new(store, "https://agents.example.com".parse().unwrap(), None,
    ///     agent_identity::identity_seal::Keyring::new("k1", [7; 32]));
    /// assert_eq!(endpoints.redirect_uri("github"), "https://agents.example.com/oauth/github/callback");
    /// ```
    pub fn new(
        store: Arc<DelegatedTokenStore>,
        public_url: url::Url,
        return_url: Option<url::Url>,
        keys: Keyring,
    ) -> Self {
        Self {
            store,
            secure_cookies: public_url.scheme() == "https",
            base_path: public_url.path().trim_end_matches('/').to_owned(),
            public_url: public_url.as_str().trim_end_matches('/').to_owned(),
            return_url,
            // Flow cookies and tickets have keys of their own, derived from the configured ones.
            ticket_keys: keys.for_purpose("oauth-connect-ticket"),
            keys: keys.for_purpose("oauth-flow-cookie"),
            used_tickets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(connect::TICKET_LIFETIME)
                .build(),
            policies: std::sync::OnceLock::new(),
        }
    }

    /// Asks `policies` before each connect link is made: `connect` on `Provider::"<name>"` for
    /// the user. A policy that forbids it, or that cannot be evaluated, refuses the link.
    pub fn govern(&self, policies: Arc<agent_identity::identity_policy::PolicyGate>) {
        let _ = self.policies.set(policies);
    }

    /// The callback URL of `provider`, as registered with it.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use agent_identity::identity_oauth::{DelegatedTokenStore, MemoryTokens};
    /// # let store = Arc::new(DelegatedTokenStore::new(Arc::new(MemoryTokens::default())));
    /// # let endpoints = agent_identity_server::app::oauth::OAuthEndpoints::new(store, "http://127.0.0.1:3001/".parse().unwrap(), None, agent_identity::identity_seal::Keyring::new("k", [1; 32]));
    /// assert_eq!(endpoints.redirect_uri("kaggle"), "http://127.0.0.1:3001/oauth/kaggle/callback");
    /// ```
    pub fn redirect_uri(&self, provider: &str) -> String {
        format!("{}/oauth/{provider}/callback", self.public_url)
    }

    fn cookie_name(provider: &str) -> String {
        format!("agent_identity_flow_{provider}")
    }

    fn cookie(&self, provider: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let text = format!(
            "{}={value}; Path={}/oauth/{provider}/callback; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            Self::cookie_name(provider),
            self.base_path,
        );
        // Names and values are base64url and checked provider names: always a valid header.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn seal_flow(&self, flow: &Flow) -> Result<String, Error> {
        let plain = serde_json::to_vec(flow).unwrap_or_default();
        let sealed = self
            .keys
            .seal(flow_binding(&flow.provider).as_bytes(), &plain)?;
        Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).unwrap_or_default()))
    }

    fn open_flow(&self, provider: &str, value: &str) -> Option<Flow> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let sealed: SealedBox = serde_json::from_slice(&bytes).ok()?;
        let plain = self
            .keys
            .open(&sealed, flow_binding(provider).as_bytes())
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// What a flow cookie is bound to: a cookie of one provider's flow does not open for another.
fn flow_binding(provider: &str) -> String {
    format!("agent-identity oauth flow {provider}")
}

/// The endpoints' state: the endpoints, absent when no `oauth` store is configured.
pub type OAuthState = Option<Arc<OAuthEndpoints>>;

fn not_configured() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "oauth_not_configured",
        "no store of type \"oauth\" is configured",
    )
}

fn unknown_provider(provider: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "unknown_provider",
        &format!("no provider `{}` is configured", printable(provider)),
    )
}

/// At most 64 printable characters of `text`, for messages that quote the request.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The answer to a provider's failure: the provider's refusal is a 400 for the caller to act on
/// (connect again), its absence a 502.
fn provider_failure(err: &Error) -> Response {
    let (status, code) = match err {
        Error::Protocol { code, .. } => (StatusCode::BAD_REQUEST, code.as_str()),
        Error::Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, "reconnect_needed"),
        Error::NotSupported { .. } => (StatusCode::BAD_REQUEST, "not_supported"),
        Error::PermissionDenied { .. } => (StatusCode::FORBIDDEN, "not_permitted"),
        Error::InvalidArgument {
            argument: "scope", ..
        } => (StatusCode::BAD_REQUEST, "invalid_scope"),
        Error::InvalidArgument { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
        _ => (StatusCode::BAD_GATEWAY, "provider_unavailable"),
    };
    json_error(status, code, &err.to_string())
}

#[derive(Deserialize)]
pub(crate) struct UserQuery {
    #[serde(rename = "userId")]
    user_id: Option<String>,
}

/// The user a request acts for: the authenticated caller's, or the one it names.
fn user_of(caller: Option<&Caller>, named: Option<&str>) -> Result<String, Response> {
    let bound = caller.and_then(|c| c.user_id.as_deref());
    match (bound, named) {
        (Some(bound), Some(named)) if bound != named => Err(json_error(
            StatusCode::FORBIDDEN,
            "caller_user_mismatch",
            "the request names a different user than the authenticated caller",
        )),
        (Some(bound), _) => Ok(bound.to_owned()),
        (None, Some(named))
            if !named.trim().is_empty()
                && named.len() <= 256
                && !named.chars().any(char::is_control) =>
        {
            Ok(named.to_owned())
        }
        (None, Some(_)) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`userId` must be 1 to 256 characters, none of them control characters",
        )),
        (None, None) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name the user with `?userId=` (or authenticate as the user)",
        )),
    }
}

/// The endpoints, and the user `request` acts for; or the answer refusing it.
fn acting(
    endpoints: OAuthState,
    request: &Request,
    query: &UserQuery,
) -> Result<(Arc<OAuthEndpoints>, String), Response> {
    let endpoints = endpoints.ok_or_else(not_configured)?;
    let caller = request.extensions().get::<Caller>();
    let user = user_of(caller, query.user_id.as_deref())?;
    Ok((endpoints, user))
}

/// [`acting`] on `provider`, which must be configured.
fn acting_on(
    endpoints: OAuthState,
    provider: &str,
    request: &Request,
    query: &UserQuery,
) -> Result<(Arc<OAuthEndpoints>, String, Arc<Provider>), Response> {
    let (endpoints, user) = acting(endpoints, request, query)?;
    let found = endpoints
        .store
        .provider_named(provider)
        .cloned()
        .ok_or_else(|| unknown_provider(provider))?;
    Ok((endpoints, user, found))
}

/// The value of cookie `name` in `headers`.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `GET /oauth/{provider}/callback`.
pub(crate) async fn callback(
    State(endpoints): State<OAuthState>,
    Path(provider_name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let Some(endpoints) = endpoints else {
        return not_configured();
    };
    let Some(provider) = endpoints.store.provider_named(&provider_name).cloned() else {
        return unknown_provider(&provider_name);
    };
    let outcome = finish(&endpoints, &provider, &provider_name, &query, &headers).await;
    // The flow is over, whatever its outcome: the cookie goes.
    let clear = endpoints.cookie(&provider_name, "", 0);
    let mut response = match (&endpoints.return_url, outcome) {
        (Some(back), outcome) => {
            let mut url = back.clone();
            {
                let mut pairs = url.query_pairs_mut();
                pairs.append_pair("provider", &provider_name);
                match &outcome {
                    Ok(_) => {
                        pairs.append_pair("status", "connected");
                    }
                    Err((_, code, _)) => {
                        pairs.append_pair("status", "error");
                        pairs.append_pair("error", code);
                    }
                }
            }
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(location) = HeaderValue::from_str(url.as_str()) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        (None, Ok(body)) => (StatusCode::OK, axum::Json(body)).into_response(),
        (None, Err((status, code, message))) => json_error(status, &code, &message),
    };
    response.headers_mut().append(header::SET_COOKIE, clear);
    no_store(response)
}

type Refusal = (StatusCode, String, String);

fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Refusal {
    (status, code.to_owned(), message.into())
}

async fn finish(
    endpoints: &OAuthEndpoints,
    provider: &Provider,
    provider_name: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<serde_json::Value, Refusal> {
    let flow = cookie_value(headers, &OAuthEndpoints::cookie_name(provider_name))
        .and_then(|value| endpoints.open_flow(provider_name, value))
        .ok_or_else(|| {
            refusal(
                StatusCode::BAD_REQUEST,
                "no_flow",
                format!(
                    "no {provider_name} connection was started in this browser (start at /oauth/{provider_name}/connect)"
                ),
            )
        })?;
    if flow.provider != provider_name {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "no_flow",
            "the flow was started for another provider",
        ));
    }
    if OffsetDateTime::now_utc().unix_timestamp() > flow.expires {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "flow_expired",
            format!(
                "the connection took longer than {} minutes: start again",
                FLOW_LIFETIME.as_secs() / 60
            ),
        ));
    }
    let pkce = Pkce::from_verifier(&flow.verifier).map_err(|_| {
        refusal(
            StatusCode::BAD_REQUEST,
            "no_flow",
            "the flow cookie is not valid",
        )
    })?;
    let pending = PendingAuthorization {
        issuer: flow.issuer,
        state: Secret::new(flow.state),
        nonce: Secret::new(flow.nonce),
        pkce,
        redirect_uri: flow.redirect_uri,
        resources: flow.resources,
        openid: flow.openid,
        iss_required: flow.iss_required,
    };
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let code = check_callback(&pending, &pairs).map_err(|err| refused_by(&err))?;
    let client = provider.client().await.map_err(|err| refused_by(&err))?;
    let tokens = client
        .exchange_code(&pending, &code)
        .await
        .map_err(|err| refused_by(&err))?;
    endpoints
        .store
        .connect(&flow.user, provider_name, &tokens)
        .await
        .map_err(|err| refused_by(&err))?;
    tracing::info!(provider = %provider_name, "connected");
    // Who the user is at the provider is shown, not needed: a failure to read it is logged.
    let account = match provider.account(&tokens).await {
        Ok(account) => account,
        Err(err) => {
            tracing::info!(provider = %provider_name, error = %err, "account not read");
            None
        }
    };
    Ok(json!({
        "provider": provider_name,
        "userId": flow.user,
        "connected": true,
        "account": account,
        "expiresAt": rfc3339(&tokens),
    }))
}

fn rfc3339(tokens: &TokenSet) -> Option<String> {
    tokens.expires_at.and_then(|at| {
        at.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

fn refused_by(err: &Error) -> Refusal {
    match err {
        Error::Protocol { code, .. } => refusal(StatusCode::BAD_REQUEST, code, err.to_string()),
        _ => refusal(
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            err.to_string(),
        ),
    }
}

/// `POST /oauth/{provider}/disconnect`.
pub(crate) async fn disconnect(
    State(endpoints): State<OAuthState>,
    Path(provider_name): Path<String>,
    Query(query): Query<UserQuery>,
    request: Request,
) -> Response {
    let (endpoints, user, _) = match acting_on(endpoints, &provider_name, &request, &query) {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    match endpoints.store.disconnect(&user, &provider_name).await {
        Ok(revoked) => no_store(
            axum::Json(json!({
                "provider": provider_name,
                "userId": user,
                "disconnected": true,
                "revokedAtProvider": revoked,
            }))
            .into_response(),
        ),
        Err(err) => {
            let mut response = provider_failure(&err);
            if response.status() == StatusCode::BAD_REQUEST {
                *response.status_mut() = StatusCode::BAD_GATEWAY;
            }
            response
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiTokenBody {
    token: String,
}

/// `POST /oauth/{provider}/token`: `{"token": "..."}`.
pub(crate) async fn api_token(
    State(endpoints): State<OAuthState>,
    Path(provider_name): Path<String>,
    Query(query): Query<UserQuery>,
    request: Request,
) -> Response {
    let (endpoints, user, provider) = match acting_on(endpoints, &provider_name, &request, &query) {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    if provider.is_oauth() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "oauth_provider",
            &format!(
                "`{provider_name}` is connected with OAuth: GET /oauth/{provider_name}/connect"
            ),
        );
    }
    let (parts, body) = request.into_parts();
    let bytes = match super::read_json_body(&parts, body, MAX_API_TOKEN * 2).await {
        Ok(bytes) => bytes,
        Err(refused) => return axum::response::IntoResponse::into_response(refused),
    };
    // The body holds the token: a parse error must not quote it.
    let Ok(body) = serde_json::from_slice::<ApiTokenBody>(&bytes) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be {\"token\": \"...\"} and nothing else",
        );
    };
    let token = body.token.trim();
    if token.is_empty()
        || token.len() > MAX_API_TOKEN
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            &format!("`token` must be 1 to {MAX_API_TOKEN} visible ASCII characters (no spaces)"),
        );
    }
    let tokens = TokenSet::bearer(Secret::new(token), None);
    match endpoints
        .store
        .connect(&user, &provider_name, &tokens)
        .await
    {
        Ok(()) => no_store(
            axum::Json(json!({
                "provider": provider_name,
                "userId": user,
                "connected": true,
            }))
            .into_response(),
        ),
        Err(err) => provider_failure(&err),
    }
}

/// `GET /oauth/connections`.
pub(crate) async fn connections(
    State(endpoints): State<OAuthState>,
    Query(query): Query<UserQuery>,
    request: Request,
) -> Response {
    let (endpoints, user) = match acting(endpoints, &request, &query) {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    match connection_statuses(&endpoints, &user).await {
        Ok(listed) => {
            no_store(axum::Json(json!({ "userId": user, "connections": listed })).into_response())
        }
        Err(err) => provider_failure(&err),
    }
}

/// The state of `user`'s connection to each provider served: connected or not, expired,
/// refreshable, the scope granted. Never a token.
pub(crate) async fn connection_statuses(
    endpoints: &OAuthEndpoints,
    user: &str,
) -> Result<Vec<serde_json::Value>, Error> {
    let now = OffsetDateTime::now_utc();
    let mut listed = Vec::new();
    for (reference, provider) in endpoints.store.served() {
        let stored = endpoints.store.stored(user, provider.name()).await?;
        let mut entry = json!({
            "provider": provider.name(),
            "ref": reference.as_str(),
            "kind": if provider.is_oauth() { "oauth" } else { "api-token" },
            "connected": stored.is_some(),
        });
        if let Some(page) = provider.token_page() {
            entry["tokenPage"] = json!(page);
        }
        if let Some(tokens) = stored {
            entry["status"] = json!(tokens.status_at(now));
            entry["expired"] = json!(tokens.is_expired_at(now));
            entry["expiresAt"] = json!(rfc3339(&tokens));
            entry["refreshable"] = json!(tokens.refresh_token.is_some());
            if let Some(scope) = &tokens.scope {
                entry["scope"] = json!(scope);
            }
        }
        listed.push(entry);
    }
    Ok(listed)
}

#[cfg(test)]
mod tests;
