//! Pages for people, under `/ui/`: sign-in through the configured OpenID provider (the sidecar
//! as a relying party: the code flow with PKCE, the ID token verified, a sealed session
//! cookie), the approvals page for approvers, and the connections page for users.
//!
//! Every form carries the session's own token and must come from the sidecar's own page
//! (`Sec-Fetch-Site`, `Origin`); the session cookie is `SameSite=Strict` and `HttpOnly`.
//! No page runs a script or shows a secret.

pub(crate) mod pages;
mod session;

use std::collections::HashMap;
use std::sync::Arc;

use agent_identity::identity_http::OutboundPolicy;
use agent_identity::identity_oauth::{PendingAuthorization, Pkce, Provider, check_callback};
use agent_identity::identity_seal::Keyring;
use agent_identity::{ConfigError, OffsetDateTime, Secret};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use super::guard::from_the_page;
use pages::{ProviderRow, page};
use session::{Cookies, SESSION_COOKIE, SIGNIN_COOKIE, Session, SignIn, random_token};

/// How long a sign-in may take at the identity provider.
const SIGNIN_SECS: u64 = 600;

/// The `[web]` section.
///
/// ```
/// let web: agent_identity_server::app::web::WebSettings = toml::from_str(r#"
/// public_url = "https://sidecar.example.com"
/// issuer = "https://login.example.com"
/// client_id = "agent-identity-pages"
/// approvers = ["bob"]
/// "#).unwrap();
/// assert_eq!(web.user_claim, "sub");
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// Where browsers reach the sidecar; the callback is `<public_url>/ui/callback`.
    pub public_url: String,
    /// The OpenID provider people sign in with.
    pub issuer: String,
    /// The sidecar's client id there.
    pub client_id: String,
    /// The environment variable holding its client secret (a public client when absent).
    pub client_secret_env: Option<String>,
    /// The ID token claim that names the person, as approvals and connections know them.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Who may approve and reject held calls on the approvals page.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How long a session lasts, in seconds.
    #[serde(default = "default_session_secs")]
    pub session_secs: u64,
    /// Allow an identity provider over plain HTTP on loopback (tests, development).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// The environment variable holding the key (32 bytes, base64) that seals session cookies;
    /// replicas must share it. A key made at start when absent.
    pub session_key_env: Option<String>,
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_session_secs() -> u64 {
    8 * 3600
}

/// The pages, ready to serve.
pub struct Web {
    provider: Provider,
    redirect_uri: String,
    cookies: Cookies,
    user_claim: String,
    approvers: Vec<String>,
    session_secs: u64,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("redirect_uri", &self.redirect_uri)
            .field("approvers", &self.approvers)
            .finish_non_exhaustive()
    }
}

impl Web {
    /// The pages of `settings`; `env` looks up the client secret and the session key. Every
    /// problem is named with its field.
    pub fn new(
        settings: WebSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<ConfigError>> {
        let located = |field: &str, problem: String| ConfigError::new("web", Some(field), problem);
        let mut errors = Vec::new();
        let public = url::Url::parse(&settings.public_url)
            .map_err(|err| errors.push(located("public_url", err.to_string())))
            .ok();
        let secret = match &settings.client_secret_env {
            Some(name) => match env(name) {
                Some(value) => Some(Secret::new(value)),
                None => {
                    errors.push(located("client_secret_env", format!("`{name}` is not set")));
                    None
                }
            },
            None => None,
        };
        let key = match &settings.session_key_env {
            Some(name) => {
                let decoded = env(name).and_then(|value| STANDARD.decode(value.trim()).ok());
                match decoded.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) {
                    Some(key) => Some(key),
                    None => {
                        errors.push(located(
                            "session_key_env",
                            format!("`{name}` must hold 32 bytes in base64"),
                        ));
                        None
                    }
                }
            }
            None => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|_| {
                        errors.push(located(
                            "session_key_env",
                            "the random source failed".into(),
                        ))
                    })
                    .ok()
                    .map(|()| key)
            }
        };
        if settings.session_secs == 0 {
            errors.push(located("session_secs", "must be at least 1".into()));
        }
        let policy = OutboundPolicy::default().allow_http_loopback(settings.allow_http_loopback);
        let provider = Provider::openid(
            "web",
            settings.issuer.clone(),
            settings.client_id.clone(),
            secret,
            policy,
        )
        .map_err(|err| errors.push(located("issuer", err.to_string())))
        .ok();
        match (public, key, provider) {
            (Some(public), Some(key), Some(provider)) if errors.is_empty() => {
                let redirect_uri = format!("{}/ui/callback", public.as_str().trim_end_matches('/'));
                Ok(Self {
                    provider: provider.scopes(["openid"]),
                    redirect_uri,
                    cookies: Cookies::new(&Keyring::new("web", key), public.scheme() == "https"),
                    user_claim: settings.user_claim,
                    approvers: settings.approvers,
                    session_secs: settings.session_secs,
                })
            }
            _ => Err(errors),
        }
    }

    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        self.cookies.session(cookie_value(headers, SESSION_COOKIE)?)
    }

    fn may_approve(&self, user: &str) -> bool {
        self.approvers.iter().any(|approver| approver == user)
    }
}

/// The pages' routes, when `[web]` is configured.
pub(crate) fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/ui/", get(home))
        .route("/ui", get(home))
        .route("/ui/signin", get(signin))
        .route("/ui/callback", get(callback))
        .route("/ui/signout", post(signout))
        .route("/ui/approvals", get(approvals))
        .route("/ui/approvals/{id}/{decision}", post(decide))
        .route("/ui/connections", get(connections))
        .route("/ui/connections/{provider}/{action}", post(connection))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn web(state: &AppState) -> Result<&Web, Box<Response>> {
    state.web.as_deref().ok_or_else(|| {
        Box::new(page(
            StatusCode::NOT_FOUND,
            "Not found",
            None,
            pages::message("No pages are configured."),
        ))
    })
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refused(status: StatusCode, session: Option<&Session>, text: &str) -> Response {
    page(status, "Refused", session, pages::message(text))
}

async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let web = match web(&state) {
        Ok(web) => web,
        Err(response) => return *response,
    };
    let session = web.session(&headers);
    page(
        StatusCode::OK,
        "Home",
        session.as_ref(),
        pages::home(session.as_ref()),
    )
}

#[derive(Deserialize)]
struct SignInQuery {
    login_hint: Option<String>,
}

/// Sends the browser to the identity provider, with PKCE, `state` and `nonce` sealed in a
/// cookie for the callback.
async fn signin(State(state): State<Arc<AppState>>, Query(query): Query<SignInQuery>) -> Response {
    let web = match web(&state) {
        Ok(web) => web,
        Err(response) => return *response,
    };
    let (url, pending) = match web
        .provider
        .authorize(&web.redirect_uri, query.login_hint.as_deref())
        .await
    {
        Ok(started) => started,
        Err(err) => {
            tracing::warn!(error = %err, "sign-in could not start");
            return refused(
                StatusCode::BAD_GATEWAY,
                None,
                "The identity provider cannot be reached.",
            );
        }
    };
    let signin = SignIn {
        issuer: pending.issuer.clone(),
        state: pending.state.expose_secret().to_owned(),
        nonce: pending.nonce.expose_secret().to_owned(),
        verifier: pending.pkce.verifier().expose_secret().to_owned(),
        redirect_uri: pending.redirect_uri.clone(),
        iss_required: pending.iss_required,
        expires: OffsetDateTime::now_utc().unix_timestamp() + SIGNIN_SECS as i64,
    };
    let Some(cookie) = web.cookies.signin_cookie(&signin, SIGNIN_SECS) else {
        return refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "The sign-in could not be sealed.",
        );
    };
    let mut response = see_other(url.as_str());
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    // The provider must not learn more than it is sent.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The identity provider's callback: the code exchanged, the ID token verified, a session.
async fn callback(State(state): State<Arc<AppState>>, headers: HeaderMap, uri: Uri) -> Response {
    let web = match web(&state) {
        Ok(web) => web,
        Err(response) => return *response,
    };
    let Some(signin) = cookie_value(&headers, SIGNIN_COOKIE).and_then(|v| web.cookies.signin(v))
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            None,
            "This sign-in was not started here, or took too long.",
        );
    };
    let Ok(pkce) = Pkce::from_verifier(&signin.verifier) else {
        return refused(
            StatusCode::BAD_REQUEST,
            None,
            "This sign-in cannot be finished.",
        );
    };
    let pending = PendingAuthorization {
        issuer: signin.issuer,
        state: Secret::new(signin.state),
        nonce: Secret::new(signin.nonce),
        pkce,
        redirect_uri: signin.redirect_uri,
        resources: Vec::new(),
        openid: true,
        iss_required: signin.iss_required,
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let user = match finish_signin(web, &pending, &pairs).await {
        Ok(user) => user,
        Err(text) => return refused(StatusCode::FORBIDDEN, None, &text),
    };
    let (Some(csrf), Ok(lifetime)) = (random_token(), i64::try_from(web.session_secs)) else {
        return refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "No session could be made.",
        );
    };
    let session = Session {
        user,
        csrf,
        expires: OffsetDateTime::now_utc()
            .unix_timestamp()
            .saturating_add(lifetime),
    };
    let Some(cookie) = web.cookies.session_cookie(&session, web.session_secs) else {
        return refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "No session could be made.",
        );
    };
    tracing::info!(target: "agent_identity::audit", user = %session.user, "signed in to the pages");
    let mut response = see_other("/ui/");
    response.headers_mut().append(header::SET_COOKIE, cookie);
    if let Some(cleared) = web.cookies.cleared(SIGNIN_COOKIE, "/ui/callback") {
        response.headers_mut().append(header::SET_COOKIE, cleared);
    }
    response
}

/// The person the callback names, or why not (never a token or a secret).
async fn finish_signin(
    web: &Web,
    pending: &PendingAuthorization,
    pairs: &[(&str, &str)],
) -> Result<String, String> {
    let code =
        check_callback(pending, pairs).map_err(|err| format!("The sign-in was refused: {err}"))?;
    let client = web
        .provider
        .client()
        .await
        .map_err(|_| "The identity provider cannot be reached.".to_owned())?;
    // The ID token is verified here: signature, issuer, audience, expiry and nonce.
    let tokens = client
        .exchange_code(pending, &code)
        .await
        .map_err(|err| format!("The sign-in could not be finished: {err}"))?;
    let id_token = tokens
        .id_token
        .ok_or_else(|| "The identity provider sent no ID token.".to_owned())?;
    // Read after verification: the payload of the token just verified.
    let claims: serde_json::Value = id_token
        .expose_secret()
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| "The ID token cannot be read.".to_owned())?;
    claims
        .get(&web.user_claim)
        .and_then(|value| value.as_str())
        .filter(|user| !user.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("The ID token has no `{}` claim.", web.user_claim))
}

/// A form's session, checked: signed in, sent by the sidecar's own page, with the session's
/// token.
fn checked_form(
    web: &Web,
    headers: &HeaderMap,
    uri: &Uri,
    form: &HashMap<String, String>,
) -> Result<Session, Box<Response>> {
    let Some(session) = web.session(headers) else {
        return Err(Box::new(refused(
            StatusCode::UNAUTHORIZED,
            None,
            "Sign in first.",
        )));
    };
    let token_matches = form
        .get("csrf")
        .is_some_and(|token| bool::from(token.as_bytes().ct_eq(session.csrf.as_bytes())));
    if !from_the_page(headers, uri) || !token_matches {
        tracing::warn!(target: "agent_identity::audit", user = %session.user, path = uri.path(),
            "a form not sent by the sidecar's own page was refused");
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            Some(&session),
            "This form did not come from this site's own page.",
        )));
    }
    Ok(session)
}

async fn signout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let web = match web(&state) {
        Ok(web) => web,
        Err(response) => return *response,
    };
    if let Err(response) = checked_form(web, &headers, &uri, &form) {
        return *response;
    }
    let mut response = see_other("/ui/");
    if let Some(cleared) = web.cookies.cleared(SESSION_COOKIE, "/ui") {
        response.headers_mut().insert(header::SET_COOKIE, cleared);
    }
    response
}

async fn approvals(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let web = match web(&state) {
        Ok(web) => web,
        Err(response) => return *response,
    };
    let Some(session) = web.session(&headers) else {
        return see_other("/ui/signin");
    };
    let Some(approvals) = &state.approvals else {
        return refused(
            StatusCode::NOT_FOUND,
            Some(&session),
            "No approvals are configured.",
        );
    };
    if !web.may_approve(&session.user) {
        return refused(
            StatusCode::FORBIDDEN,
            Some(&session),
            "You are not an approver.",
        );
    }
    match approvals.list().await {
        Ok(all) => page(
            StatusCode::OK,
            "Approvals",
            Some(&session),
            pages::approvals(&session, &all),
        ),
        Err(err) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&session),
            &err.to_string(),
        ),
    }
}

async fn decide(
    State(state): State<Arc<AppState>>,
    Path((id, decision)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let web = match web(&state) {
        Ok(web) => web,
        Err(response) => return *response,
    };
    let session = match checked_form(web, &headers, &uri, &form) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    let (Some(approvals), true) = (&state.approvals, web.may_approve(&session.user)) else {
        return refused(
            StatusCode::FORBIDDEN,
            Some(&session),
            "You are not an approver.",
        );
    };
    let decided = match decision.as_str() {
        "approve" => approvals.approve(&id, &session.user).await,
        "reject" => approvals.reject(&id, &session.user, None).await,
        _ => return refused(StatusCode::NOT_FOUND, Some(&session), "No such decision."),
    };
    match decided {
        Ok(_) => see_other("/ui/approvals"),
        Err(err) => refused(StatusCode::CONFLICT, Some(&session), &err.to_string()),
    }
}

async fn connections(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let web = match web(&state) {
        Ok(web) => web,
        Err(response) => return *response,
    };
    let Some(session) = web.session(&headers) else {
        return see_other("/ui/signin");
    };
    let Some(endpoints) = state.oauth.as_deref() else {
        return refused(
            StatusCode::NOT_FOUND,
            Some(&session),
            "No providers are configured.",
        );
    };
    let now = OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    for (_, provider) in endpoints.store.served() {
        let stored = match endpoints.store.stored(&session.user, provider.name()).await {
            Ok(stored) => stored,
            Err(err) => {
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&session),
                    &err.to_string(),
                );
            }
        };
        rows.push(ProviderRow {
            name: provider.name().to_owned(),
            oauth: provider.is_oauth(),
            connected: stored.is_some(),
            status: stored.as_ref().map(|tokens| tokens.status_at(now)),
            expires_at: stored
                .as_ref()
                .and_then(|tokens| tokens.expires_at)
                .map(agent_identity::format_rfc3339),
        });
    }
    page(
        StatusCode::OK,
        "Connections",
        Some(&session),
        pages::connections(&session, &rows),
    )
}

async fn connection(
    State(state): State<Arc<AppState>>,
    Path((provider, action)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let web = match web(&state) {
        Ok(web) => web,
        Err(response) => return *response,
    };
    let session = match checked_form(web, &headers, &uri, &form) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    let Some(endpoints) = state.oauth.as_deref() else {
        return refused(
            StatusCode::NOT_FOUND,
            Some(&session),
            "No providers are configured.",
        );
    };
    match action.as_str() {
        // The connect link of the signed-in person: its page, then the provider.
        "connect" => {
            match endpoints.connect_link(&provider, &session.user, None, Some(&session.user)) {
                Ok((link, _)) => see_other(&link),
                Err(err) => refused(StatusCode::BAD_REQUEST, Some(&session), &err.to_string()),
            }
        }
        "disconnect" => match endpoints.store.disconnect(&session.user, &provider).await {
            Ok(_) => see_other("/ui/connections"),
            Err(err) => refused(StatusCode::BAD_GATEWAY, Some(&session), &err.to_string()),
        },
        _ => refused(StatusCode::NOT_FOUND, Some(&session), "No such action."),
    }
}
