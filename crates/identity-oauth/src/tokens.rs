//! Calls to the token, revocation and userinfo endpoints, and the tokens they give.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use identity_core::{Error, OffsetDateTime, Secret};
use identity_http::{
    AuthorizationServerMetadata, ClientCredentials, Form, HttpClient, Retry, TokenCache,
    TokenResponse,
};
use serde_json::{Map, Value};
use url::Url;

use crate::BACKEND;
use crate::flow::PendingAuthorization;

/// Tokens an authorization server issued, with an absolute expiry. `Debug` shows no token.
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, if any.
    pub refresh_token: Option<Secret>,
    /// The ID token (OpenID Connect), if any.
    pub id_token: Option<Secret>,
    /// When the access token expires; `None` when the server did not say.
    pub expires_at: Option<OffsetDateTime>,
    /// The scopes granted, when the server said.
    pub scope: Option<String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// True when the access token has expired at `now`.
    ///
    /// ```
    /// # use identity_core::{OffsetDateTime, Secret};
    /// let tokens = identity_oauth::TokenSet::bearer(Secret::new("t"), Some(OffsetDateTime::UNIX_EPOCH));
    /// assert!(tokens.is_expired_at(OffsetDateTime::now_utc()));
    /// ```
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// True when the access token expires within `window` of `now` (or has expired): time to
    /// refresh.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use identity_core::{OffsetDateTime, Secret};
    /// let now = OffsetDateTime::now_utc();
    /// let tokens = identity_oauth::TokenSet::bearer(Secret::new("t"), Some(now + time::Duration::seconds(30)));
    /// assert!(tokens.expires_within(now, Duration::from_secs(60)));
    /// assert!(!tokens.expires_within(now, Duration::from_secs(10)));
    /// ```
    pub fn expires_within(&self, now: OffsetDateTime, window: Duration) -> bool {
        let window = time::Duration::try_from(window).unwrap_or(time::Duration::MAX);
        self.expires_at
            .is_some_and(|at| at <= now.saturating_add(window))
    }

    /// The token's status in words: `expires in 59 minutes`, `expired 2 hours ago`, `does not
    /// expire`.
    ///
    /// ```
    /// # use identity_core::{OffsetDateTime, Secret};
    /// let now = OffsetDateTime::now_utc();
    /// let tokens = identity_oauth::TokenSet::bearer(Secret::new("t"), Some(now + time::Duration::minutes(90)));
    /// assert_eq!(tokens.status_at(now), "expires in 1 hour 30 minutes");
    /// ```
    pub fn status_at(&self, now: OffsetDateTime) -> String {
        match self.expires_at {
            None => "does not expire".into(),
            Some(at) if at > now => format!("expires in {}", human_duration(at - now)),
            Some(at) => format!("expired {} ago", human_duration(now - at)),
        }
    }

    /// A bearer token alone (an API token, a token read back from storage).
    ///
    /// ```
    /// let t = identity_oauth::TokenSet::bearer(identity_core::Secret::new("kaggle-key"), None);
    /// assert!(t.refresh_token.is_none());
    /// ```
    pub fn bearer(access_token: Secret, expires_at: Option<OffsetDateTime>) -> Self {
        Self {
            access_token,
            refresh_token: None,
            id_token: None,
            expires_at,
            scope: None,
        }
    }
}

/// A duration in words, at most two units: `1 hour 30 minutes`, `45 seconds`.
fn human_duration(duration: time::Duration) -> String {
    let seconds = duration.whole_seconds().max(0);
    let units = [
        ("day", 86_400),
        ("hour", 3_600),
        ("minute", 60),
        ("second", 1),
    ];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (name, size) in units {
        let count = rest / size;
        rest %= size;
        if count > 0 && parts.len() < 2 {
            parts.push(format!(
                "{count} {name}{}",
                if count == 1 { "" } else { "s" }
            ));
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        "0 seconds".into()
    } else {
        parts.join(" ")
    }
}

/// An OAuth client of one authorization server: token requests, revocation, userinfo.
///
/// Every call goes through [`identity_http::HttpClient`] (the address policy checked on the
/// address connected to, no redirects, no proxy from the environment, a streaming body cap,
/// timeouts) and reads answers by its one error model. A request that spends something
/// single-use (an authorization code, a refresh token) is sent once, never retried.
///
/// ```
/// use identity_core::Secret;
/// use identity_http::{AuthorizationServerMetadata, ClientCredentials, HttpClient, OutboundPolicy};
///
/// let server = AuthorizationServerMetadata::from_json(serde_json::json!({
///     "issuer": "https://as.example.com", "token_endpoint": "https://as.example.com/token"}),
///     "https://as.example.com", &OutboundPolicy::default())?;
/// let client = identity_oauth::OAuthClient::new(HttpClient::new(OutboundPolicy::default())?, server,
///     ClientCredentials::basic("agent", Secret::new("s")));
/// assert!(!format!("{client:?}").contains("\"s\""));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct OAuthClient {
    server: AuthorizationServerMetadata,
    credentials: ClientCredentials,
    http: HttpClient,
    cached: Arc<TokenCache<String, TokenSet>>,
    keys: Arc<crate::id_token::IssuerKeys>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("issuer", &self.server.issuer)
            .field("client", &self.credentials)
            .finish_non_exhaustive()
    }
}

fn protocol(code: &str, description: String) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: code.into(),
        description: Some(description),
    }
}

impl OAuthClient {
    /// The client `credentials` of `server` (whose endpoints were checked when its metadata was
    /// read), calling out through `http`.
    ///
    /// ```
    /// # use identity_http::{AuthorizationServerMetadata, ClientCredentials, HttpClient, OutboundPolicy};
    /// # let server = AuthorizationServerMetadata::from_json(serde_json::json!({"issuer": "https://as.example.com"}), "https://as.example.com", &OutboundPolicy::default())?;
    /// let public = identity_oauth::OAuthClient::new(HttpClient::new(OutboundPolicy::default())?, server,
    ///     ClientCredentials::public("cli-app"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(
        http: HttpClient,
        server: AuthorizationServerMetadata,
        credentials: ClientCredentials,
    ) -> Self {
        Self {
            keys: Arc::new(crate::id_token::IssuerKeys::new(server.jwks_uri.clone())),
            server,
            credentials,
            http,
            cached: Arc::new(TokenCache::new(1_000)),
        }
    }

    /// The client id.
    ///
    /// ```
    /// # use identity_http::{AuthorizationServerMetadata, ClientCredentials, HttpClient, OutboundPolicy};
    /// # let server = AuthorizationServerMetadata::from_json(serde_json::json!({"issuer": "https://as.example.com"}), "https://as.example.com", &OutboundPolicy::default())?;
    /// let client = identity_oauth::OAuthClient::new(HttpClient::new(OutboundPolicy::default())?, server, ClientCredentials::public("agent"));
    /// assert_eq!(client.client_id(), "agent");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn client_id(&self) -> &str {
        self.credentials.client_id()
    }

    /// The HTTP client, for a provider's own endpoints.
    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The client's credentials, for a provider's own endpoints that authenticate the client.
    pub(crate) fn credentials(&self) -> &ClientCredentials {
        &self.credentials
    }

    /// The server's metadata.
    ///
    /// ```
    /// # use identity_http::{AuthorizationServerMetadata, ClientCredentials, HttpClient, OutboundPolicy};
    /// # let server = AuthorizationServerMetadata::from_json(serde_json::json!({"issuer": "https://as.example.com"}), "https://as.example.com", &OutboundPolicy::default())?;
    /// # let client = identity_oauth::OAuthClient::new(HttpClient::new(OutboundPolicy::default())?, server, ClientCredentials::public("a"));
    /// assert_eq!(client.server().issuer, "https://as.example.com");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn server(&self) -> &AuthorizationServerMetadata {
        &self.server
    }

    fn token_endpoint(&self) -> Result<&Url, Error> {
        self.server.token_endpoint.as_ref().ok_or_else(|| {
            protocol(
                "invalid_metadata",
                format!("`{}` has no token_endpoint", self.server.issuer),
            )
        })
    }

    /// A token request and its answer: tokens, or a typed refusal.
    async fn token_request(
        &self,
        form: &Form,
        retry: Retry,
        what: &str,
        previous_refresh: Option<&Secret>,
    ) -> Result<TokenSet, Error> {
        let endpoint = self.token_endpoint()?;
        let token = self
            .http
            .token(endpoint, &self.credentials, form, retry, what)
            .await
            .and_then(TokenResponse::into_bearer)
            .map_err(|err| err.into_error(BACKEND))?;
        Ok(TokenSet {
            expires_at: token.expires_at(OffsetDateTime::now_utc()),
            access_token: token.access_token,
            // A refresh answer without a refresh token keeps the one there was (RFC 6749 §6).
            refresh_token: token.refresh_token.or_else(|| previous_refresh.cloned()),
            id_token: token.id_token,
            scope: token.scope,
        })
    }

    /// Exchanges the code of a checked callback (`check_callback`), with the flow's exact
    /// `redirect_uri`, its PKCE verifier and its resources. When the flow asked for `openid`,
    /// the answer must carry an ID token, verified before anything is kept: its signature with
    /// the issuer's keys (JWKS), `iss`, `aud`, `exp` and the flow's `nonce`.
    ///
    /// ```no_run
    /// # async fn example(client: identity_oauth::OAuthClient, pending: identity_oauth::PendingAuthorization, code: identity_core::Secret) -> Result<(), identity_core::Error> {
    /// let tokens = client.exchange_code(&pending, &code).await?;
    /// # Ok(()) }
    /// ```
    pub async fn exchange_code(
        &self,
        pending: &PendingAuthorization,
        code: &Secret,
    ) -> Result<TokenSet, Error> {
        if pending.issuer != self.server.issuer {
            return Err(protocol(
                "invalid_issuer",
                "the flow was started with another authorization server".into(),
            ));
        }
        let mut form = Form::grant("authorization_code");
        form.push_secret("code", code.expose_secret())
            .push("redirect_uri", &pending.redirect_uri)
            .push_secret("code_verifier", pending.pkce.verifier().expose_secret());
        for resource in &pending.resources {
            form.push("resource", resource);
        }
        // A code is spent by the first request that reaches the server: sent once.
        let tokens = self
            .token_request(&form, Retry::once(), "code exchange", None)
            .await?;
        if pending.openid {
            let id_token = tokens.id_token.as_ref().ok_or_else(|| {
                protocol(
                    "invalid_id_token",
                    "the flow asked for openid and the answer has no id_token".into(),
                )
            })?;
            self.keys
                .verify(
                    &self.http,
                    id_token,
                    &self.server.issuer,
                    self.client_id(),
                    &pending.nonce,
                )
                .await?;
        }
        Ok(tokens)
    }

    /// Refreshes `tokens` (with `resources`, RFC 8707). The answer's refresh token replaces the
    /// old one when the server rotates it, and the old one is kept when the answer has none; the
    /// caller must store the result before using its access token. A refused refresh token is
    /// [`Error::Unauthenticated`]: the user must connect again. Sent once: a rotating refresh
    /// token is spent by the first request that reaches the server.
    ///
    /// ```no_run
    /// # async fn example(client: identity_oauth::OAuthClient, tokens: identity_oauth::TokenSet) -> Result<(), identity_core::Error> {
    /// let fresh = client.refresh(&tokens, &[]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn refresh(
        &self,
        tokens: &TokenSet,
        resources: &[String],
    ) -> Result<TokenSet, Error> {
        let refresh = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| Error::Unauthenticated {
                backend: BACKEND,
                detail: "no refresh token: the user must connect again".into(),
            })?;
        let mut form = Form::grant("refresh_token");
        form.push_secret("refresh_token", refresh.expose_secret());
        for resource in resources {
            form.push("resource", resource);
        }
        match self
            .token_request(&form, Retry::once(), "refresh", Some(refresh))
            .await
        {
            Err(Error::Protocol { code, .. }) if code == "invalid_grant" => {
                Err(Error::Unauthenticated {
                    backend: BACKEND,
                    detail: "the refresh token was refused: the user must connect again".into(),
                })
            }
            other => other,
        }
    }

    /// A `client_credentials` token for `scopes` (and `resource`), cached until 30 s before it
    /// expires (5 minutes when the server gives no lifetime); concurrent callers asking for the
    /// same share one request.
    ///
    /// ```no_run
    /// # async fn example(client: identity_oauth::OAuthClient) -> Result<(), identity_core::Error> {
    /// let tokens = client.client_credentials(&["crm:read"], None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn client_credentials(
        &self,
        scopes: &[&str],
        resource: Option<&str>,
    ) -> Result<TokenSet, Error> {
        let key = format!("{}\u{0}{}", scopes.join(" "), resource.unwrap_or_default());
        let fetch = || async {
            let mut form = Form::grant("client_credentials");
            if !scopes.is_empty() {
                form.push("scope", &scopes.join(" "));
            }
            if let Some(resource) = resource {
                form.push("resource", resource);
            }
            let now = OffsetDateTime::now_utc();
            let mut tokens = self
                .token_request(&form, Retry::default(), "client_credentials", None)
                .await?;
            let lifetime = tokens
                .expires_at
                .map(|at| Duration::try_from(at - now).unwrap_or(Duration::ZERO));
            // A token without a stated lifetime is kept for the cache's default one, and says so.
            let lifetime = self.cached.lifetime_of(lifetime);
            tokens.expires_at =
                Some(now.saturating_add(
                    time::Duration::try_from(lifetime).unwrap_or(time::Duration::MAX),
                ));
            Ok::<_, Error>((tokens, Some(lifetime)))
        };
        self.cached
            .get_or_fetch(key, fetch)
            .await
            .map_err(|err: Arc<Error>| err.duplicate())
    }

    /// Revokes `tokens` (RFC 7009): the refresh token first (which ends the grant on most
    /// servers), then the access token. Forgetting the local copy is the caller's next step;
    /// forgetting is not revoking.
    ///
    /// ```no_run
    /// # async fn example(client: identity_oauth::OAuthClient, tokens: identity_oauth::TokenSet) -> Result<(), identity_core::Error> {
    /// client.revoke(&tokens).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, tokens: &TokenSet) -> Result<(), Error> {
        let endpoint =
            self.server
                .revocation_endpoint
                .as_ref()
                .ok_or_else(|| Error::NotSupported {
                    operation: "token revocation (no revocation_endpoint)",
                    backend: BACKEND,
                })?;
        let mut targets = Vec::new();
        if let Some(refresh) = &tokens.refresh_token {
            targets.push((refresh, "refresh_token"));
        }
        targets.push((&tokens.access_token, "access_token"));
        for (token, hint) in targets {
            self.http
                .revoke(endpoint, &self.credentials, token, Some(hint))
                .await
                .map_err(|err| err.into_error(BACKEND))?;
        }
        Ok(())
    }

    /// The claims of the userinfo endpoint for `access_token`.
    ///
    /// ```no_run
    /// # async fn example(client: identity_oauth::OAuthClient, tokens: identity_oauth::TokenSet) -> Result<(), identity_core::Error> {
    /// let claims = client.userinfo(&tokens.access_token).await?;
    /// # Ok(()) }
    /// ```
    pub async fn userinfo(&self, access_token: &Secret) -> Result<Map<String, Value>, Error> {
        let endpoint =
            self.server
                .userinfo_endpoint
                .as_ref()
                .ok_or_else(|| Error::NotSupported {
                    operation: "userinfo (no userinfo_endpoint)",
                    backend: BACKEND,
                })?;
        let request = self
            .http
            .request(reqwest::Method::GET, endpoint)
            .header("accept", "application/json")
            .bearer_auth(access_token.expose_secret());
        let answer = self.http.send(request, "userinfo").await?;
        read_resource_answer(&answer, "userinfo")
    }
}

/// A resource server's answer (userinfo, a provider's user API): its JSON object on a 200; a
/// 401 is the access token refused.
pub(crate) fn read_resource_answer(
    answer: &identity_http::Answer,
    what: &str,
) -> Result<Map<String, Value>, Error> {
    match answer.status {
        200 => answer.json_object(what).map_err(|_| {
            protocol(
                "invalid_response",
                format!("{what}: the answer is not a JSON object"),
            )
        }),
        401 => Err(Error::Unauthenticated {
            backend: BACKEND,
            detail: format!("{what} refused the access token"),
        }),
        429 | 500..=599 => Err(Error::unavailable(
            BACKEND,
            format!("{what}: answered {}", answer.status),
        )),
        status => Err(protocol(
            "invalid_response",
            format!("{what} answered {status}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(human_duration(time::Duration::seconds(45)), "45 seconds");
        assert_eq!(
            human_duration(time::Duration::seconds(61)),
            "1 minute 1 second"
        );
        assert_eq!(human_duration(time::Duration::seconds(3_600)), "1 hour");
        assert_eq!(
            human_duration(time::Duration::seconds(90_061)),
            "1 day 1 hour"
        );
        assert_eq!(human_duration(time::Duration::seconds(0)), "0 seconds");
    }

    #[test]
    fn status_covers_every_case() {
        let now = OffsetDateTime::now_utc();
        let at = |seconds: i64| {
            TokenSet::bearer(
                Secret::new("t"),
                Some(now + time::Duration::seconds(seconds)),
            )
        };
        assert_eq!(at(-120).status_at(now), "expired 2 minutes ago");
        assert!(at(-1).is_expired_at(now));
        assert!(!at(10).is_expired_at(now));
        assert_eq!(
            TokenSet::bearer(Secret::new("t"), None).status_at(now),
            "does not expire"
        );
        assert!(
            !TokenSet::bearer(Secret::new("t"), None)
                .expires_within(now, Duration::from_secs(3600))
        );
        let shown = format!("{:?}", at(10));
        assert!(!shown.contains("\"t\""), "{shown}");
    }
}
