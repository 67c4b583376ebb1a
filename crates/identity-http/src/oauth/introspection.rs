//! Token introspection (RFC 7662), and revocation (RFC 7009).

use identity_core::{OffsetDateTime, Secret};
use serde_json::{Map, Value};
use url::Url;

use crate::client::HttpClient;
use crate::oauth::auth::ClientCredentials;
use crate::oauth::error::OAuthError;
use crate::oauth::{Form, Retry};

/// What an authorization server says of a token (RFC 7662 §2.2). Holds no token.
///
/// ```
/// let claims = serde_json::json!({"active": true, "sub": "alice", "scope": "read write", "exp": 2000000000});
/// let info = identity_http::Introspection::from_claims(claims.as_object().unwrap().clone());
/// assert!(info.active && info.has_scope("write"));
/// assert_eq!(info.subject.as_deref(), Some("alice"));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Introspection {
    /// Whether the token is active. Everything else is meaningful only when it is.
    pub active: bool,
    /// `sub`.
    pub subject: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `exp`.
    pub expires_at: Option<OffsetDateTime>,
    /// `iss`.
    pub issuer: Option<String>,
    /// Every member of the answer.
    pub claims: Map<String, Value>,
}

impl Introspection {
    /// Reads the members of an introspection answer; anything but `"active": true` is inactive.
    ///
    /// ```
    /// let info = identity_http::Introspection::from_claims(serde_json::Map::new());
    /// assert!(!info.active);
    /// ```
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Self {
            active: claims.get("active") == Some(&Value::Bool(true)),
            subject: text("sub"),
            client_id: text("client_id"),
            scope: text("scope"),
            expires_at: claims
                .get("exp")
                .and_then(Value::as_i64)
                .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok()),
            issuer: text("iss"),
            claims,
        }
    }

    /// True when the token is active and its scope holds `scope`.
    ///
    /// ```
    /// let info = identity_http::Introspection::default();
    /// assert!(!info.has_scope("read"));
    /// ```
    pub fn has_scope(&self, scope: &str) -> bool {
        self.active
            && self
                .scope
                .as_deref()
                .is_some_and(|s| s.split(' ').any(|one| one == scope))
    }
}

impl HttpClient {
    /// Asks `endpoint` (an RFC 7662 introspection endpoint) about `token`, as `client`.
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient, endpoint: url::Url, token: identity_core::Secret) -> Result<(), identity_http::OAuthError> {
    /// let client = identity_http::ClientCredentials::basic("resource-server", identity_core::Secret::new("s"));
    /// let info = http.introspect(&endpoint, &client, &token, Some("access_token")).await?;
    /// if !info.active { /* refuse the token */ }
    /// # Ok(()) }
    /// ```
    pub async fn introspect(
        &self,
        endpoint: &Url,
        client: &ClientCredentials,
        token: &Secret,
        hint: Option<&str>,
    ) -> Result<Introspection, OAuthError> {
        let mut form = Form::default();
        form.push_secret("token", token.expose_secret());
        if let Some(hint) = hint {
            form.push("token_type_hint", hint);
        }
        let claims = self
            .oauth_post(
                endpoint,
                Some(client),
                &form,
                Retry::default(),
                "introspection",
            )
            .await?;
        Ok(Introspection::from_claims(claims))
    }

    /// Revokes `token` at `endpoint` (RFC 7009), as `client`. A 200 is success whatever the
    /// token was (the RFC's rule: an unknown token is not an error).
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient, endpoint: url::Url, token: identity_core::Secret) -> Result<(), identity_http::OAuthError> {
    /// let client = identity_http::ClientCredentials::public("agent");
    /// http.revoke(&endpoint, &client, &token, Some("refresh_token")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(
        &self,
        endpoint: &Url,
        client: &ClientCredentials,
        token: &Secret,
        hint: Option<&str>,
    ) -> Result<(), OAuthError> {
        let mut form = Form::default();
        form.push_secret("token", token.expose_secret());
        if let Some(hint) = hint {
            form.push("token_type_hint", hint);
        }
        self.oauth_post(
            endpoint,
            Some(client),
            &form,
            Retry::default(),
            "revocation",
        )
        .await
        .map(|_| ())
    }
}
