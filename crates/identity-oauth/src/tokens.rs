//! Calls to the token, revocation and userinfo endpoints, and the tokens they give.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use identity_core::{Error, OffsetDateTime, Secret};
use identity_dcr::AuthorizationServerMetadata;
use moka::future::Cache;
use serde_json::{Map, Value};
use url::Url;
use url::form_urlencoded::byte_serialize;

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
/// ```
/// use identity_core::Secret;
/// use identity_dcr::{AuthorizationServerMetadata, FetchPolicy};
///
/// let server = AuthorizationServerMetadata::from_json(serde_json::json!({
///     "issuer": "https://as.example.com", "token_endpoint": "https://as.example.com/token"}),
///     "https://as.example.com", &FetchPolicy::default())?;
/// let client = identity_oauth::OAuthClient::new(server, "agent", Some(Secret::new("s")))?;
/// assert!(!format!("{client:?}").contains("\"s\""));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct OAuthClient {
    server: AuthorizationServerMetadata,
    client_id: String,
    client_secret: Option<Secret>,
    http: reqwest::Client,
    cached: Cache<String, TokenSet>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("issuer", &self.server.issuer)
            .field("client_id", &self.client_id)
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
    /// A client `client_id` (confidential with `client_secret`, public without) of `server`,
    /// whose endpoints were checked when its metadata was read.
    ///
    /// ```
    /// # use identity_dcr::{AuthorizationServerMetadata, FetchPolicy};
    /// # let server = AuthorizationServerMetadata::from_json(serde_json::json!({"issuer": "https://as.example.com"}), "https://as.example.com", &FetchPolicy::default())?;
    /// let public = identity_oauth::OAuthClient::new(server, "cli-app", None)?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(
        server: AuthorizationServerMetadata,
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
    ) -> Result<Self, Error> {
        // reqwest is built without a bundled TLS provider; fails only when one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            // No idle connections kept: a POST sent on a connection the server has just closed
            // fails, and retrying a token request could spend a code or a refresh token twice.
            // These calls are rare (tokens are cached), so a new connection each is cheap.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|_| Error::unavailable(BACKEND, "the HTTP client could not be built"))?;
        Ok(Self {
            server,
            client_id: client_id.into(),
            client_secret,
            http,
            cached: Cache::builder().max_capacity(1_000).build(),
        })
    }

    /// The client id.
    ///
    /// ```
    /// # use identity_dcr::{AuthorizationServerMetadata, FetchPolicy};
    /// # let server = AuthorizationServerMetadata::from_json(serde_json::json!({"issuer": "https://as.example.com"}), "https://as.example.com", &FetchPolicy::default())?;
    /// let client = identity_oauth::OAuthClient::new(server, "agent", None)?;
    /// assert_eq!(client.client_id(), "agent");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The HTTP client (no redirects, a timeout), for a provider's own endpoints.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The client secret, for a provider's own endpoints that authenticate the client.
    pub(crate) fn client_secret(&self) -> Option<&Secret> {
        self.client_secret.as_ref()
    }

    /// The server's metadata.
    ///
    /// ```
    /// # use identity_dcr::{AuthorizationServerMetadata, FetchPolicy};
    /// # let server = AuthorizationServerMetadata::from_json(serde_json::json!({"issuer": "https://as.example.com"}), "https://as.example.com", &FetchPolicy::default())?;
    /// # let client = identity_oauth::OAuthClient::new(server, "a", None)?;
    /// assert_eq!(client.server().issuer, "https://as.example.com");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn server(&self) -> &AuthorizationServerMetadata {
        &self.server
    }

    /// POSTs `form` to `endpoint` with the client's authentication; the answer's status and
    /// JSON object.
    async fn post(
        &self,
        endpoint: &Url,
        mut form: Vec<(&str, String)>,
        what: &str,
    ) -> Result<(u16, Map<String, Value>), Error> {
        // GitHub answers in form encoding unless JSON is asked for; others ignore the header.
        let mut request = self
            .http
            .post(endpoint.clone())
            .header("accept", "application/json");
        match &self.client_secret {
            Some(secret) => {
                let encode = |text: &str| byte_serialize(text.as_bytes()).collect::<String>();
                // RFC 6749 §2.3.1: id and secret are form-encoded before they are joined.
                let pair = format!(
                    "{}:{}",
                    encode(&self.client_id),
                    encode(secret.expose_secret())
                );
                request =
                    request.header("authorization", format!("Basic {}", STANDARD.encode(pair)));
            }
            None => form.push(("client_id", self.client_id.clone())),
        }
        let response = request.form(&form).send().await.map_err(|err| {
            Error::unavailable(
                BACKEND,
                if err.is_timeout() {
                    format!("{what}: timed out")
                } else {
                    format!("{what}: the request failed")
                },
            )
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|_| {
            Error::unavailable(BACKEND, format!("{what}: the answer could not be read"))
        })?;
        if body.is_empty() {
            return Ok((status, Map::new()));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => Ok((status, object)),
            _ if (500..600).contains(&status) => Err(Error::unavailable(
                BACKEND,
                format!("{what}: answered {status}"),
            )),
            _ => Err(protocol(
                "invalid_response",
                format!("{what}: the answer is not a JSON object"),
            )),
        }
    }

    fn token_endpoint(&self) -> Result<&Url, Error> {
        self.server.token_endpoint.as_ref().ok_or_else(|| {
            protocol(
                "invalid_metadata",
                format!("`{}` has no token_endpoint", self.server.issuer),
            )
        })
    }

    /// A token request, and its answer read: tokens, or a typed refusal.
    async fn token_request(
        &self,
        form: Vec<(&str, String)>,
        what: &str,
        previous_refresh: Option<&Secret>,
    ) -> Result<TokenSet, Error> {
        let endpoint = self.token_endpoint()?.clone();
        let (status, object) = self.post(&endpoint, form, what).await?;
        // GitHub reports a refused code or refresh token with a 200 and an `error` field.
        if status != 200 || object.contains_key("error") {
            let code = match object.get("error").and_then(Value::as_str) {
                // GitHub's names for a code or refresh token it does not accept.
                Some("bad_verification_code" | "bad_refresh_token") => "invalid_grant",
                Some(code) => code,
                None => "invalid_response",
            };
            return Err(match status {
                429 | 500..=599 => {
                    Error::unavailable(BACKEND, format!("{what}: answered {status}"))
                }
                _ => protocol(code, format!("{what} was refused ({status})")),
            });
        }
        let text = |name: &str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        let access_token = text("access_token")
            .ok_or_else(|| protocol("invalid_response", format!("{what}: no access_token")))?;
        let expires_at = object
            .get("expires_in")
            .and_then(Value::as_i64)
            .map(|seconds| OffsetDateTime::now_utc() + time::Duration::seconds(seconds));
        Ok(TokenSet {
            access_token: Secret::new(access_token),
            // A refresh answer without a refresh token keeps the one there was (RFC 6749 §6).
            refresh_token: text("refresh_token")
                .map(Secret::new)
                .or_else(|| previous_refresh.cloned()),
            id_token: text("id_token").map(Secret::new),
            expires_at,
            scope: text("scope"),
        })
    }

    /// Exchanges the code of a checked callback (`check_callback`), with the flow's exact
    /// `redirect_uri`, its PKCE verifier and its resources.
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
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.expose_secret().to_owned()),
            ("redirect_uri", pending.redirect_uri.clone()),
            (
                "code_verifier",
                pending.pkce.verifier().expose_secret().to_owned(),
            ),
        ];
        form.extend(pending.resources.iter().map(|r| ("resource", r.clone())));
        self.token_request(form, "code exchange", None).await
    }

    /// Refreshes `tokens` (with `resources`, RFC 8707). The answer's refresh token replaces the
    /// old one when the server rotates it, and the old one is kept when the answer has none; the
    /// caller must store the result before using its access token. A refused refresh token is
    /// [`Error::Unauthenticated`]: the user must connect again.
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
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.expose_secret().to_owned()),
        ];
        form.extend(resources.iter().map(|r| ("resource", r.clone())));
        match self.token_request(form, "refresh", Some(refresh)).await {
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
    /// expires; concurrent callers asking for the same share one request.
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
        let now = OffsetDateTime::now_utc();
        if let Some(cached) = self.cached.get(&key).await
            && cached.expires_within(now, Duration::from_secs(30))
        {
            self.cached.invalidate(&key).await;
        }
        let fetch = async {
            let mut form = vec![("grant_type", "client_credentials".to_owned())];
            if !scopes.is_empty() {
                form.push(("scope", scopes.join(" ")));
            }
            if let Some(resource) = resource {
                form.push(("resource", resource.to_owned()));
            }
            self.token_request(form, "client_credentials", None).await
        };
        self.cached
            .try_get_with(key, fetch)
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
                .clone()
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
            let form = vec![
                ("token", token.expose_secret().to_owned()),
                ("token_type_hint", hint.to_owned()),
            ];
            let (status, _) = self.post(&endpoint, form, "revocation").await?;
            if status != 200 {
                return Err(match status {
                    429 | 500..=599 => {
                        Error::unavailable(BACKEND, format!("revocation: answered {status}"))
                    }
                    _ => protocol(
                        "revocation_refused",
                        format!("revocation of the {hint} answered {status}"),
                    ),
                });
            }
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
                .clone()
                .ok_or_else(|| Error::NotSupported {
                    operation: "userinfo (no userinfo_endpoint)",
                    backend: BACKEND,
                })?;
        let response = self
            .http
            .get(endpoint)
            .bearer_auth(access_token.expose_secret())
            .send()
            .await
            .map_err(|_| Error::unavailable(BACKEND, "userinfo: the request failed"))?;
        let status = response.status().as_u16();
        if status == 401 {
            return Err(Error::Unauthenticated {
                backend: BACKEND,
                detail: "userinfo refused the access token".into(),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|_| Error::unavailable(BACKEND, "userinfo: the answer could not be read"))?;
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(claims)) if status == 200 => Ok(claims),
            _ => Err(protocol(
                "invalid_response",
                format!("userinfo answered {status}"),
            )),
        }
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
