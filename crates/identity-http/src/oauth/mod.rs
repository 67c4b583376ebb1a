//! OAuth endpoint requests: one form, one client authentication, one error model, one retry
//! rule, for token, revocation and introspection endpoints alike.

pub(crate) mod auth;
pub(crate) mod error;
pub(crate) mod introspection;
pub(crate) mod key_file;
pub(crate) mod token;

use std::fmt;
use std::time::Duration;

use identity_core::Secret;
use url::Url;
use url::form_urlencoded::Serializer;

use crate::client::{Answer, HttpClient};
use auth::ClientCredentials;
use error::{OAuthError, read_oauth_answer};
use token::TokenResponse;

/// A form body (`application/x-www-form-urlencoded`). Its values carry codes, tokens and
/// secrets: `Debug` shows the parameter names only.
///
/// ```
/// let mut form = identity_http::Form::default();
/// form.push("grant_type", "refresh_token");
/// form.push_secret("refresh_token", "r-123");
/// assert_eq!(form.get("grant_type"), Some("refresh_token"));
/// assert!(!format!("{form:?}").contains("r-123"));
/// ```
#[derive(Clone, Default)]
pub struct Form {
    pairs: Vec<(String, Secret)>,
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Form {
    /// A form with `grant_type`.
    ///
    /// ```
    /// let form = identity_http::Form::grant("client_credentials");
    /// assert_eq!(form.get("grant_type"), Some("client_credentials"));
    /// ```
    pub fn grant(grant_type: &str) -> Self {
        let mut form = Self::default();
        form.push("grant_type", grant_type);
        form
    }

    /// Adds a parameter (repeatable: `audience`, `resource`).
    ///
    /// ```
    /// let mut form = identity_http::Form::default();
    /// form.push("resource", "https://a.example").push("resource", "https://b.example");
    /// ```
    pub fn push(&mut self, name: &str, value: &str) -> &mut Self {
        self.pairs.push((name.to_owned(), Secret::new(value)));
        self
    }

    /// Adds a parameter whose value is secret (a code, a token, a client secret).
    ///
    /// ```
    /// let mut form = identity_http::Form::default();
    /// form.push_secret("code", "c-1");
    /// ```
    pub fn push_secret(&mut self, name: &str, value: &str) -> &mut Self {
        self.push(name, value)
    }

    /// The first value of `name`.
    ///
    /// ```
    /// assert_eq!(identity_http::Form::default().get("x"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.expose_secret())
    }

    /// True when the form has no parameter.
    ///
    /// ```
    /// assert!(identity_http::Form::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The encoded body.
    ///
    /// ```
    /// let mut form = identity_http::Form::default();
    /// form.push("a", "b c&d");
    /// assert_eq!(form.encode().expose_secret(), "a=b+c%26d");
    /// ```
    pub fn encode(&self) -> Secret {
        let mut serializer = Serializer::new(String::new());
        for (name, value) in &self.pairs {
            serializer.append_pair(name, value.expose_secret());
        }
        Secret::new(serializer.finish())
    }
}

/// When a failed request is sent again: only for a failure that may pass (a 5xx, a 429, a
/// connection that could not be made or timed out), at most `attempts` times in all, after an
/// exponential delay with jitter, or the server's `Retry-After`, never longer than `max_delay`.
///
/// A request that spends something single-use (an authorization code, a rotating refresh
/// token) is sent once ([`Retry::once`]): after a timeout nobody knows whether the server
/// spent it.
///
/// ```
/// let retry = identity_http::Retry::default();
/// assert_eq!(retry.attempts(), 3);
/// assert_eq!(identity_http::Retry::once().attempts(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    attempts: u32,
    backoff: Duration,
    max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// One attempt, no retry.
    ///
    /// ```
    /// assert_eq!(identity_http::Retry::once().attempts(), 1);
    /// ```
    pub fn once() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// `attempts` in all (at least 1), the first retry after about `backoff` (doubled at each
    /// retry, plus up to as much jitter).
    ///
    /// ```
    /// let retry = identity_http::Retry::new(5, std::time::Duration::from_millis(50));
    /// assert_eq!(retry.attempts(), 5);
    /// ```
    pub fn new(attempts: u32, backoff: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            backoff,
            ..Self::default()
        }
    }

    /// The most attempts.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay before retry number `attempt` (1 for the first retry).
    fn delay(&self, attempt: u32, server: Option<Duration>) -> Duration {
        let exponential = self.backoff.saturating_mul(1 << (attempt - 1).min(8));
        let jitter = Duration::from_millis(fastrand::u64(
            0..=u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
        ));
        server.unwrap_or(exponential + jitter).min(self.max_delay)
    }
}

impl HttpClient {
    /// POSTs `form` to the OAuth endpoint `endpoint` (checked already) as `client`, asking for
    /// JSON, retried by `retry`, and reads the answer by
    /// [`read_oauth_answer`]'s rules. Returns the answer's JSON object.
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient, endpoint: url::Url) -> Result<(), identity_http::OAuthError> {
    /// let client = identity_http::ClientCredentials::public("agent");
    /// let mut form = identity_http::Form::default();
    /// form.push("token", "t").push("token_type_hint", "access_token");
    /// http.oauth_post(&endpoint, Some(&client), &form, identity_http::Retry::default(), "revocation").await?;
    /// # Ok(()) }
    /// ```
    pub async fn oauth_post(
        &self,
        endpoint: &Url,
        client: Option<&ClientCredentials>,
        form: &Form,
        retry: Retry,
        what: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OAuthError> {
        let answer = self
            .oauth_answer(endpoint, client, form, retry, what)
            .await?;
        read_oauth_answer(&answer)
    }

    /// A token request ([`HttpClient::oauth_post`]), its answer read as a [`TokenResponse`].
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient, endpoint: url::Url) -> Result<(), identity_http::OAuthError> {
    /// let client = identity_http::ClientCredentials::basic("agent", identity_core::Secret::new("s"));
    /// let token = http.token(&endpoint, &client, &identity_http::Form::grant("client_credentials"),
    ///     identity_http::Retry::default(), "client_credentials").await?;
    /// # Ok(()) }
    /// ```
    pub async fn token(
        &self,
        endpoint: &Url,
        client: &ClientCredentials,
        form: &Form,
        retry: Retry,
        what: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let answer = self
            .oauth_answer(endpoint, Some(client), form, retry, what)
            .await?;
        TokenResponse::read(&answer)
    }

    /// POSTs `form` to `endpoint` as `client`, retried by `retry`, and gives the answer as it
    /// came (for a caller with reading rules of its own, such as RFC 8693's); a 429 or 5xx still
    /// there after the last attempt is [`OAuthError::Retryable`].
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient, endpoint: url::Url) -> Result<(), identity_http::OAuthError> {
    /// let client = identity_http::ClientCredentials::public("agent");
    /// let answer = http.oauth_answer(&endpoint, Some(&client), &identity_http::Form::grant("client_credentials"),
    ///     identity_http::Retry::default(), "token").await?;
    /// let token = identity_http::TokenResponse::read(&answer)?;
    /// # Ok(()) }
    /// ```
    pub async fn oauth_answer(
        &self,
        endpoint: &Url,
        client: Option<&ClientCredentials>,
        form: &Form,
        retry: Retry,
        what: &str,
    ) -> Result<Answer, OAuthError> {
        let mut attempt = 1;
        loop {
            let outcome = self.oauth_send_once(endpoint, client, form, what).await;
            let failure = match outcome {
                Ok(answer) if answer.status == 429 || (500..600).contains(&answer.status) => {
                    OAuthError::Retryable {
                        status: answer.status,
                        retry_after: answer.retry_after,
                    }
                }
                Ok(answer) => return Ok(answer),
                Err(err) => err,
            };
            if !failure.is_retryable() || attempt >= retry.attempts {
                return Err(failure);
            }
            let server_delay = match &failure {
                OAuthError::Retryable { retry_after, .. } => *retry_after,
                _ => None,
            };
            let delay = retry.delay(attempt, server_delay);
            tracing::debug!(target: "agent_identity::http", what, attempt, ?delay, error = %failure, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn oauth_send_once(
        &self,
        endpoint: &Url,
        client: Option<&ClientCredentials>,
        form: &Form,
        what: &str,
    ) -> Result<Answer, OAuthError> {
        let mut form = form.clone();
        let authorization = match client {
            Some(client) => client.authenticate(&mut form, endpoint)?,
            None => None,
        };
        let mut request = self
            .request(reqwest::Method::POST, endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            // GitHub answers in form encoding unless JSON is asked for; others ignore it.
            .header("accept", "application/json")
            .body(form.encode().expose_secret().to_owned());
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization.expose_secret());
        }
        Ok(self.send(request, what).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_honour_the_server_within_the_cap() {
        let retry = Retry::new(5, Duration::from_millis(100));
        let first = retry.delay(1, None);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        let third = retry.delay(3, None);
        assert!(third >= Duration::from_millis(400), "{third:?}");
        assert_eq!(
            retry.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry.delay(1, Some(Duration::from_secs(600))),
            Duration::from_secs(10)
        );
        assert_eq!(Retry::new(0, Duration::ZERO).attempts(), 1);
    }
}
