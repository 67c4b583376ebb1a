//! Connect links: the backend mints one for one of its users, that user confirms it in the
//! browser, and only then does the authorization code flow start.
//!
//! A browser's request never names the user a connection is for: a page on another site could
//! send the browser to such a URL (a top-level navigation carries no `Origin`) and link the
//! browser owner's account to the user of its choice. So the user travels in a ticket sealed by
//! this server (AES-256-GCM, its own derived key), minted on an authenticated call
//! (`POST /oauth/{provider}/link`), good for ten minutes and once. Opening the link shows a
//! page naming the user and the provider; its button POSTs the ticket back, and that POST is
//! refused unless the browser says it comes from the page itself (`Sec-Fetch-Site` and
//! `Origin`). The page cannot be framed, so its button cannot be clicked through another page.

use std::sync::Arc;
use std::time::Duration;

use agent_identity::Error;
use agent_identity::OffsetDateTime;
use agent_identity::identity_seal::SealedBox;
use agent_identity::layer::json_error;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    FLOW_LIFETIME, Flow, OAuthEndpoints, OAuthState, no_store, not_configured, printable,
    provider_failure, unknown_provider, user_of,
};
use crate::app::guard::from_the_page;
use crate::auth::Caller;

/// How long a connect link may wait to be opened and confirmed.
pub(crate) const TICKET_LIFETIME: Duration = Duration::from_secs(600);
/// The largest body of `POST /oauth/{provider}/link`.
const MAX_LINK_BODY: usize = 16 * 1024;

/// What a connect link carries, sealed: whom it is for and what it may ask.
#[derive(Serialize, Deserialize)]
struct Ticket {
    /// Random, to tell a used ticket from a fresh one.
    id: String,
    user: String,
    provider: String,
    scopes: Option<Vec<String>>,
    login_hint: Option<String>,
    /// Unix time after which the ticket is refused.
    expires: i64,
}

/// What a ticket is bound to: one provider's ticket does not open for another.
fn ticket_binding(provider: &str) -> String {
    format!("agent-identity connect ticket {provider}")
}

impl OAuthEndpoints {
    /// A link that lets `user` connect `provider` once within ten minutes, asking for `scopes`
    /// (the provider's own when `None`; each must be among those it allows), with `login_hint`
    /// passed to the provider. The link opens a confirmation page on this server.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use agent_identity::identity_oauth::{DelegatedTokenStore, MemoryTokens, Provider};
    /// use agent_identity_server::app::oauth::OAuthEndpoints;
    /// let github = Provider::github("Iv1.0123", agent_identity::Secret::new("s"))?;
    /// let store = Arc::new(DelegatedTokenStore::new(Arc::new(MemoryTokens::default()))
    ///     .provider(agent_identity::CredentialRef::new("user-github")?, github));
    /// let endpoints = OAuthEndpoints::new(store, "https://agents.example.com".parse().unwrap(),
    ///     None, agent_identity::identity_seal::Keyring::new("k1", [7; 32]));
    /// let (link, _expires) = endpoints.connect_link("github", "alice", None, None)?;
    /// assert!(link.starts_with("https://agents.example.com/oauth/github/connect?ticket="));
    /// assert!(!link.contains("alice"));
    /// assert!(endpoints.connect_link("gitlab", "alice", None, None).is_err());
    /// # Ok::<(), agent_identity::Error>(())
    /// ```
    pub fn connect_link(
        &self,
        provider: &str,
        user: &str,
        scopes: Option<&[String]>,
        login_hint: Option<&str>,
    ) -> Result<(String, OffsetDateTime), Error> {
        let found = self
            .store
            .provider_named(provider)
            .ok_or_else(|| Error::InvalidArgument {
                argument: "provider",
                problem: format!("no provider `{}` is configured", printable(provider)),
            })?;
        // With no scopes asked, this checks that the provider connects by OAuth at all.
        found.check_scopes(scopes.unwrap_or_default())?;
        if let Some(gate) = self.policies.get() {
            use agent_identity::identity_policy::{Query, ResourceRef};
            let query = Query::new("connect", ResourceRef::provider(provider)).user(user);
            // As for a rule that does not require authorization: only a forbid refuses.
            let decision = gate.policies().authorize(&query, false);
            if !decision.allowed {
                return Err(Error::PermissionDenied {
                    backend: "policies",
                    detail: decision.explain(),
                });
            }
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|_| Error::unavailable("oauth", "no randomness for a ticket"))?;
        let expires = OffsetDateTime::now_utc() + TICKET_LIFETIME;
        let ticket = Ticket {
            id: hex::encode(id),
            user: user.to_owned(),
            provider: provider.to_owned(),
            scopes: scopes.map(<[String]>::to_vec),
            login_hint: login_hint.map(str::to_owned),
            expires: expires.unix_timestamp(),
        };
        let plain = serde_json::to_vec(&ticket).unwrap_or_default();
        let sealed = self
            .ticket_keys
            .seal(ticket_binding(provider).as_bytes(), &plain)?;
        let sealed = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).unwrap_or_default());
        Ok((
            format!(
                "{}/oauth/{provider}/connect?ticket={sealed}",
                self.public_url
            ),
            expires,
        ))
    }

    /// The ticket of `provider` sealed in `value`, if it opens, is not expired and not used.
    fn open_ticket(&self, provider: &str, value: &str) -> Result<Ticket, Response> {
        let invalid = || {
            json_error(
                StatusCode::BAD_REQUEST,
                "invalid_ticket",
                "this connect link is not valid: ask the application for a new one",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| invalid())?;
        let sealed: SealedBox = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let plain = self
            .ticket_keys
            .open(&sealed, ticket_binding(provider).as_bytes())
            .map_err(|_| invalid())?;
        let ticket: Ticket = serde_json::from_slice(&plain).map_err(|_| invalid())?;
        if ticket.provider != provider {
            return Err(invalid());
        }
        if OffsetDateTime::now_utc().unix_timestamp() > ticket.expires {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                "ticket_expired",
                "this connect link has expired: ask the application for a new one",
            ));
        }
        if self.used_tickets.contains_key(&ticket.id) {
            return Err(used());
        }
        Ok(ticket)
    }
}

fn used() -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        "ticket_used",
        "this connect link was used already: ask the application for a new one",
    )
}

/// The body of `POST /oauth/{provider}/link`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LinkRequest {
    /// The user, for a caller bound to none (a service key, no authentication on loopback).
    user_id: Option<String>,
    /// Space-separated scopes instead of the provider's own, among those it allows.
    scope: Option<String>,
    /// Passed to the provider's login page.
    login_hint: Option<String>,
}

/// `POST /oauth/{provider}/link`: a connect link for the caller's user (or the one an unbound
/// caller names), `{"connectUrl", "expiresAt"}`.
pub(crate) async fn link(
    State(endpoints): State<OAuthState>,
    Path(provider_name): Path<String>,
    request: Request,
) -> Response {
    let Some(endpoints) = endpoints else {
        return not_configured();
    };
    let caller = request.extensions().get::<Caller>().cloned();
    let body = match axum::body::to_bytes(request.into_body(), MAX_LINK_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is larger than 16 KiB",
            );
        }
    };
    let asked: LinkRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LinkRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(asked) => asked,
            Err(err) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("the body is not a valid link request: {err}"),
                );
            }
        }
    };
    let user = match user_of(caller.as_ref(), asked.user_id.as_deref()) {
        Ok(user) => user,
        Err(response) => return response,
    };
    let scopes: Option<Vec<String>> = asked.scope.as_deref().map(|scope| {
        scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    });
    match mint_link(
        &endpoints,
        &provider_name,
        &user,
        scopes.as_deref(),
        asked.login_hint.as_deref(),
    ) {
        Ok(link) => no_store(axum::Json(link).into_response()),
        Err(refused) => refused,
    }
}

/// A connect link for `user` to `provider_name` (`{"connectUrl", "expiresAt"}`), or the
/// answer refusing it: an unknown provider, one that takes an API token, a scope it may not
/// ask for.
pub(crate) fn mint_link(
    endpoints: &OAuthEndpoints,
    provider_name: &str,
    user: &str,
    scopes: Option<&[String]>,
    login_hint: Option<&str>,
) -> Result<serde_json::Value, Response> {
    let Some(provider) = endpoints.store.provider_named(provider_name) else {
        return Err(unknown_provider(provider_name));
    };
    if !provider.is_oauth() {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            "api_token_provider",
            &format!(
                "`{}` takes a personal API token: POST it to /oauth/{}/token",
                printable(provider_name),
                printable(provider_name)
            ),
        ));
    }
    match endpoints.connect_link(provider_name, user, scopes, login_hint) {
        Ok((url, expires)) => {
            tracing::info!(provider = %provider_name, "connect link minted");
            let expires = expires
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            Ok(json!({ "connectUrl": url, "expiresAt": expires }))
        }
        Err(err) => Err(provider_failure(&err)),
    }
}

/// A link that lets the user of a `consent_required` denial grant what is missing: the
/// provider's own scopes and the ones the denial names. `None` when this server cannot connect
/// that provider (no `oauth` store serves it, or it takes an API token).
pub(crate) fn consent_link(
    endpoints: Option<&OAuthEndpoints>,
    provider: &str,
    user: &str,
    missing: &[String],
) -> Option<(String, OffsetDateTime)> {
    let endpoints = endpoints?;
    let found = endpoints.store.provider_named(provider)?;
    if !found.is_oauth() {
        return None;
    }
    let scopes: Option<Vec<String>> = (!missing.is_empty()).then(|| {
        let mut scopes = found.default_scopes().to_vec();
        scopes.extend(
            missing
                .iter()
                .filter(|s| !scopes.contains(s))
                .cloned()
                .collect::<Vec<_>>(),
        );
        scopes
    });
    match endpoints.connect_link(provider, user, scopes.as_deref(), None) {
        Ok(link) => Some(link),
        Err(err) => {
            // A scope the provider may not ask for: the denial goes out without a link.
            tracing::info!(provider = %provider, error = %err, "no connect link for the denial");
            None
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct TicketParameter {
    ticket: Option<String>,
}

/// `GET /oauth/{provider}/connect?ticket=`: the confirmation page. Showing it changes nothing,
/// so link previews and scanners that open the link use nothing up.
pub(crate) async fn confirm(
    State(endpoints): State<OAuthState>,
    Path(provider_name): Path<String>,
    Query(query): Query<TicketParameter>,
) -> Response {
    let Some(endpoints) = endpoints else {
        return not_configured();
    };
    let Some(value) = query.ticket else {
        return no_ticket(&provider_name);
    };
    let ticket = match endpoints.open_ticket(&provider_name, &value) {
        Ok(ticket) => ticket,
        Err(response) => return no_store(response),
    };
    page(&ticket, &value)
}

fn no_ticket(provider: &str) -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        "invalid_ticket",
        &format!(
            "a connection starts from a link the application makes for you (POST /oauth/{}/link)",
            printable(provider)
        ),
    )
}

/// `POST /oauth/{provider}/connect` (the page's button, `ticket=`): uses the ticket up and sends
/// the browser to the provider, with the flow in its cookie.
pub(crate) async fn start(
    State(endpoints): State<OAuthState>,
    Path(provider_name): Path<String>,
    uri: http::Uri,
    headers: HeaderMap,
    axum::Form(form): axum::Form<TicketParameter>,
) -> Response {
    if !from_the_page(&headers, &uri) {
        return json_error(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            "a connection is confirmed on this server's own page; open the link directly",
        );
    }
    let Some(endpoints) = endpoints else {
        return not_configured();
    };
    let Some(value) = form.ticket else {
        return no_ticket(&provider_name);
    };
    let ticket = match endpoints.open_ticket(&provider_name, &value) {
        Ok(ticket) => ticket,
        Err(response) => return no_store(response),
    };
    // Once: of two confirmations racing, one inserts the id and the other is refused.
    let id = ticket.id.clone();
    if !endpoints
        .used_tickets
        .entry(id.clone())
        .or_insert(())
        .is_fresh()
    {
        return no_store(used());
    }
    match begin(&endpoints, ticket).await {
        Ok(response) => response,
        Err(response) => {
            // The provider could not be reached: the user may try the same link again.
            endpoints.used_tickets.invalidate(&id);
            no_store(response)
        }
    }
}

/// Starts the authorization code flow of `ticket`: a 303 to the provider with the sealed flow
/// in a cookie, or the provider's failure.
async fn begin(endpoints: &Arc<OAuthEndpoints>, ticket: Ticket) -> Result<Response, Response> {
    let provider = endpoints
        .store
        .provider_named(&ticket.provider)
        .cloned()
        .ok_or_else(|| unknown_provider(&ticket.provider))?;
    let redirect_uri = endpoints.redirect_uri(&ticket.provider);
    let (url, pending) = provider
        .authorize_scopes(
            &redirect_uri,
            ticket.login_hint.as_deref(),
            ticket.scopes.as_deref(),
        )
        .await
        .map_err(|err| provider_failure(&err))?;
    let flow = Flow {
        user: ticket.user,
        provider: ticket.provider.clone(),
        issuer: pending.issuer.clone(),
        state: pending.state.expose_secret().to_owned(),
        nonce: pending.nonce.expose_secret().to_owned(),
        verifier: pending.pkce.verifier().expose_secret().to_owned(),
        redirect_uri,
        resources: pending.resources.clone(),
        openid: pending.openid,
        iss_required: pending.iss_required,
        expires: (OffsetDateTime::now_utc() + FLOW_LIFETIME).unix_timestamp(),
    };
    let sealed = endpoints
        .seal_flow(&flow)
        .map_err(|err| provider_failure(&err))?;
    let cookie = endpoints.cookie(&ticket.provider, &sealed, FLOW_LIFETIME.as_secs());
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    // The provider must not learn the page's URL, which holds the ticket.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    tracing::info!(provider = %ticket.provider, "connect started");
    Ok(no_store(response))
}

/// The confirmation page of `ticket` (sealed as `sealed`).
fn page(ticket: &Ticket, sealed: &str) -> Response {
    let (user, provider) = (ticket.user.as_str(), ticket.provider.as_str());
    let body = maud::html! {
        p { "Agents acting for " strong { (user) } " will use your " strong { (provider) } " account." }
        @if let Some(scopes) = ticket.scopes.as_ref().filter(|scopes| !scopes.is_empty()) {
            p { "It asks for: " code { (scopes.join(" ")) } "." }
        }
        p { "Continue only if you are " (user) " and asked for this yourself." }
        form method="post" action="connect" {
            input type="hidden" name="ticket" value=(sealed);
            button type="submit" { "Connect " (provider) }
        }
    };
    crate::app::web::pages::standalone(StatusCode::OK, &format!("Connect {provider}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_page_leaves_no_markup_of_its_values() {
        use http_body_util::BodyExt;
        let ticket = Ticket {
            id: "t".into(),
            user: r#"<script>"a" & 'b'</script>"#.into(),
            provider: "idp".into(),
            scopes: Some(vec!["<b>".into()]),
            login_hint: None,
            expires: 0,
        };
        let answer = page(&ticket, "\"><img src=x>");
        assert_eq!(answer.headers()[header::CACHE_CONTROL], "no-store");
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            html.contains("&lt;script&gt;&quot;a&quot; &amp; 'b'&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            !html.contains("<script") && !html.contains("<b>") && !html.contains("<img"),
            "{html}"
        );
    }

    #[test]
    fn only_the_pages_own_post_is_taken_from_a_browser() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let host = ("host", "127.0.0.1:3001");
        let path: http::Uri = "/oauth/idp/connect".parse().unwrap();
        assert!(from_the_page(
            &headers(&[
                host,
                ("origin", "http://127.0.0.1:3001"),
                ("sec-fetch-site", "same-origin"),
            ]),
            &path
        ));
        assert!(from_the_page(&headers(&[host]), &path));
        // Over HTTP/2 the host is the request's `:authority`, with no `Host` header.
        let authority: http::Uri = "https://agents.example.com/oauth/idp/connect"
            .parse()
            .unwrap();
        assert!(from_the_page(
            &headers(&[
                ("origin", "https://agents.example.com"),
                ("sec-fetch-site", "same-origin"),
            ]),
            &authority
        ));
        for refused in [
            [
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
            [
                ("origin", "http://127.0.0.1:3001"),
                ("sec-fetch-site", "same-site"),
            ],
            [
                ("origin", "http://127.0.0.1:3002"),
                ("sec-fetch-site", "same-origin"),
            ],
            [("origin", "null"), ("sec-fetch-site", "same-origin")],
        ] {
            let mut all = vec![host];
            all.extend(refused);
            assert!(!from_the_page(&headers(&all), &path), "{refused:?}");
        }
    }
}
