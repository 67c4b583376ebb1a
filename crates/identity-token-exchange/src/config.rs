//! What one exchangeable credential slot is: where to exchange, as which client, for what.

use std::fmt;
use std::time::Duration;

use identity_core::{
    ConfigError, Credential, CredentialKind, CredentialRef, CredentialStatus, Secret,
};
use identity_http::{ClientAuth, ClientCredentials, PrivateKey};
use url::Url;

/// A token type URI (RFC 8693 §3). The well-known ones have constants; any absolute URI is
/// accepted.
///
/// ```
/// use identity_token_exchange::TokenType;
/// assert_eq!(TokenType::ACCESS_TOKEN.as_str(), "urn:ietf:params:oauth:token-type:access_token");
/// assert!(TokenType::new("not a uri").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenType(std::borrow::Cow<'static, str>);

impl TokenType {
    /// An OAuth 2.0 access token.
    pub const ACCESS_TOKEN: Self = Self::known("urn:ietf:params:oauth:token-type:access_token");
    /// An OAuth 2.0 refresh token.
    pub const REFRESH_TOKEN: Self = Self::known("urn:ietf:params:oauth:token-type:refresh_token");
    /// An OpenID Connect ID token.
    pub const ID_TOKEN: Self = Self::known("urn:ietf:params:oauth:token-type:id_token");
    /// A JWT.
    pub const JWT: Self = Self::known("urn:ietf:params:oauth:token-type:jwt");
    /// A SAML 1.1 assertion.
    pub const SAML1: Self = Self::known("urn:ietf:params:oauth:token-type:saml1");
    /// A SAML 2.0 assertion.
    pub const SAML2: Self = Self::known("urn:ietf:params:oauth:token-type:saml2");

    const fn known(uri: &'static str) -> Self {
        Self(std::borrow::Cow::Borrowed(uri))
    }

    /// A token type from its URI, which must be absolute (`urn:...`, `https://...`).
    ///
    /// ```
    /// assert!(identity_token_exchange::TokenType::new("urn:example:token-type:custom").is_ok());
    /// ```
    pub fn new(uri: impl Into<String>) -> Result<Self, ConfigError> {
        let uri = uri.into();
        match Url::parse(&uri) {
            Ok(_) if !uri.chars().any(char::is_whitespace) => Ok(Self(uri.into())),
            _ => Err(ConfigError::new(
                "token type",
                None,
                "is not an absolute URI",
            )),
        }
    }

    /// The URI.
    ///
    /// ```
    /// assert!(identity_token_exchange::TokenType::JWT.as_str().ends_with(":jwt"));
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a slot's token endpoint is: given, or discovered from the issuer's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token(Url),
    /// The issuer as parsed, and as written: RFC 8414 §3.3 compares the metadata's `issuer` with
    /// the one asked for character by character.
    Issuer(Url, String),
}

/// Where a token comes from when the request does not carry it: the subject token of a slot
/// that acts as a fixed identity, or the actor token of delegation (RFC 8693 `act`).
///
/// ```
/// use identity_core::Secret;
/// use identity_token_exchange::{StaticToken, TokenSource};
/// fn takes(_: &dyn TokenSource) {}
/// takes(&StaticToken::new(Secret::new("the-agents-own-token")));
/// ```
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// The token for `context`, or `None` when there is none.
    async fn token(
        &self,
        context: &identity_core::RequestContext,
    ) -> Result<Option<Secret>, identity_core::Error>;
}

/// A token fixed in configuration (the agent's own token as actor, say). `Debug` is redacted.
#[derive(Clone)]
pub struct StaticToken(Secret);

impl StaticToken {
    /// A source that always gives `token`.
    pub fn new(token: Secret) -> Self {
        Self(token)
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken([redacted])")
    }
}

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn token(
        &self,
        _: &identity_core::RequestContext,
    ) -> Result<Option<Secret>, identity_core::Error> {
        Ok(Some(self.0.clone()))
    }
}

/// The calling workload's own token, as the embedding server authenticated it
/// ([`identity_core::RequestContext::actor_token`]): delegation by whoever calls, so that the
/// issued token's `act` names that workload. A request that carries none is refused rather
/// than exchanged without an actor.
///
/// ```
/// use identity_core::{Secret, SubjectToken};
/// use identity_token_exchange::{CallersActorToken, TokenSource};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut context = identity_test_support::request_context();
/// assert!(CallersActorToken.token(&context).await.is_err());
/// context.actor_token = Some(SubjectToken::new(Secret::new("eyJ.svid")));
/// let token = CallersActorToken.token(&context).await.unwrap().unwrap();
/// assert_eq!(token.expose_secret(), "eyJ.svid");
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CallersActorToken;

#[async_trait::async_trait]
impl TokenSource for CallersActorToken {
    async fn token(
        &self,
        context: &identity_core::RequestContext,
    ) -> Result<Option<Secret>, identity_core::Error> {
        match &context.actor_token {
            Some(token) => Ok(Some(token.secret().clone())),
            None => Err(identity_core::Error::Unauthenticated {
                backend: crate::protocol::BACKEND,
                detail: "delegation needs the calling workload's own token (a JWT-SVID), and the request carries none".into(),
            }),
        }
    }
}

/// Parameters the protocol sets itself, which `extra_params` may not override.
const RESERVED: &[&str] = &[
    "grant_type",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
    "audience",
    "resource",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// One credential slot served by token exchange: the metadata its credential carries, and how
/// to obtain the token. Built with [`ExchangeConfig::builder`], which checks it.
///
/// `Debug` shows no secret.
#[derive(Clone)]
pub struct ExchangeConfig {
    pub(crate) reference: CredentialRef,
    pub(crate) name: String,
    pub(crate) kind: CredentialKind,
    pub(crate) scope: String,
    pub(crate) status: CredentialStatus,
    pub(crate) provider: Option<String>,
    pub(crate) tags: std::collections::BTreeMap<String, String>,
    pub(crate) endpoint: Endpoint,
    pub(crate) allow_http_loopback: bool,
    pub(crate) subject_source: Option<std::sync::Arc<dyn TokenSource>>,
    pub(crate) actor_source: Option<std::sync::Arc<dyn TokenSource>>,
    pub(crate) client: ClientCredentials,
    pub(crate) scopes: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) resources: Vec<Url>,
    pub(crate) subject_token_type: TokenType,
    pub(crate) actor_token_type: TokenType,
    pub(crate) requested_token_type: Option<TokenType>,
    pub(crate) extra_params: Vec<(String, String)>,
    pub(crate) default_lifetime: Duration,
}

impl fmt::Debug for ExchangeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeConfig")
            .field("reference", &self.reference)
            .field("endpoint", &self.endpoint)
            .field("client", &self.client)
            .field("scopes", &self.scopes)
            .field("audiences", &self.audiences)
            .field(
                "resources",
                &self.resources.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ExchangeConfig {
    /// A builder for slot `reference`, exchanging as client `client_id`.
    ///
    /// ```
    /// let config = identity_token_exchange::ExchangeConfig::builder("crm", "agent")
    ///     .token_endpoint("https://auth.example.com/token")
    ///     .client_auth(identity_token_exchange::ClientAuth::None)
    ///     .build()?;
    /// assert_eq!(config.reference().as_str(), "crm");
    /// # Ok::<(), identity_core::ConfigError>(())
    /// ```
    pub fn builder(
        reference: impl Into<String>,
        client_id: impl Into<String>,
    ) -> ExchangeConfigBuilder {
        ExchangeConfigBuilder {
            reference: reference.into(),
            client_id: client_id.into(),
            name: String::new(),
            kind: CredentialKind::UserDelegated,
            scope: String::new(),
            status: CredentialStatus::Active,
            provider: None,
            tags: std::collections::BTreeMap::new(),
            token_endpoint: None,
            issuer: None,
            allow_http_loopback: false,
            subject_source: None,
            actor_source: None,
            client_secret: None,
            private_key: None,
            client_auth: ClientAuth::default(),
            scopes: Vec::new(),
            audiences: Vec::new(),
            resources: Vec::new(),
            subject_token_type: TokenType::ACCESS_TOKEN,
            actor_token_type: TokenType::ACCESS_TOKEN,
            requested_token_type: None,
            extra_params: Vec::new(),
            default_lifetime: Duration::from_secs(300),
        }
    }

    /// The credential this slot stands for, without a secret: what listings show, and what a
    /// resolution fills with the exchanged token.
    ///
    /// ```
    /// use identity_core::CredentialKind;
    /// let config = identity_token_exchange::ExchangeConfig::builder("crm", "agent")
    ///     .token_endpoint("https://a.example/t").client_auth(identity_token_exchange::ClientAuth::None)
    ///     .name("CRM").provider("openai").build()?;
    /// let credential = config.credential();
    /// assert_eq!((credential.kind, credential.name.as_str()), (CredentialKind::UserDelegated, "CRM"));
    /// assert!(credential.secret.is_none());
    /// # Ok::<(), identity_core::ConfigError>(())
    /// ```
    pub fn credential(&self) -> Credential {
        // The id is the ref: an exchanged credential has no identity beyond its slot.
        let mut credential =
            Credential::new(self.reference.as_str(), self.kind, self.reference.as_str())
                .unwrap_or_else(|_| {
                    unreachable!("the ref was checked when the configuration was built")
                });
        credential.name = self.name.clone();
        credential.scope = self.scope.clone();
        credential.status = self.status;
        credential.provider = self.provider.clone();
        credential.tags = self.tags.clone();
        credential
    }

    /// The slot.
    pub fn reference(&self) -> &CredentialRef {
        &self.reference
    }

    /// The token endpoint, when it is configured rather than discovered.
    pub fn token_endpoint(&self) -> Option<&Url> {
        match &self.endpoint {
            Endpoint::Token(url) => Some(url),
            Endpoint::Issuer(..) => None,
        }
    }

    /// The issuer the token endpoint is discovered from, when it is.
    pub fn issuer(&self) -> Option<&Url> {
        match &self.endpoint {
            Endpoint::Issuer(url, _) => Some(url),
            Endpoint::Token(_) => None,
        }
    }

    /// The client and how it authenticates.
    pub fn client(&self) -> &ClientCredentials {
        &self.client
    }

    /// The requested scopes, in order.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The requested audiences, in order.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The requested resources (RFC 8707), in order.
    pub fn resources(&self) -> &[Url] {
        &self.resources
    }

    /// The token type asked for, if one is.
    pub fn requested_token_type(&self) -> Option<&TokenType> {
        self.requested_token_type.as_ref()
    }

    /// The lifetime assumed when the server gives no `expires_in`.
    pub fn default_lifetime(&self) -> Duration {
        self.default_lifetime
    }
}

/// Builds an [`ExchangeConfig`]; see [`ExchangeConfig::builder`].
#[derive(Clone)]
pub struct ExchangeConfigBuilder {
    reference: String,
    client_id: String,
    name: String,
    kind: CredentialKind,
    scope: String,
    status: CredentialStatus,
    provider: Option<String>,
    tags: std::collections::BTreeMap<String, String>,
    token_endpoint: Option<String>,
    issuer: Option<String>,
    allow_http_loopback: bool,
    subject_source: Option<std::sync::Arc<dyn TokenSource>>,
    actor_source: Option<std::sync::Arc<dyn TokenSource>>,
    client_secret: Option<Secret>,
    private_key: Option<PrivateKey>,
    client_auth: ClientAuth,
    scopes: Vec<String>,
    audiences: Vec<String>,
    resources: Vec<String>,
    subject_token_type: TokenType,
    actor_token_type: TokenType,
    requested_token_type: Option<TokenType>,
    extra_params: Vec<(String, String)>,
    default_lifetime: Duration,
}

impl fmt::Debug for ExchangeConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeConfigBuilder")
            .field("reference", &self.reference)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ExchangeConfigBuilder {
    /// The credential's name.
    pub fn name(mut self, value: impl Into<String>) -> Self {
        self.name = value.into();
        self
    }

    /// The credential's kind (`user-delegated` by default: an exchanged token acts for a user).
    pub fn kind(mut self, value: CredentialKind) -> Self {
        self.kind = value;
        self
    }

    /// The credential's scope, as the router sees it (e.g. for `readOnly` rules).
    pub fn credential_scope(mut self, value: impl Into<String>) -> Self {
        self.scope = value.into();
        self
    }

    /// The credential's status (`active` by default).
    pub fn status(mut self, value: CredentialStatus) -> Self {
        self.status = value;
        self
    }

    /// The credential's provider.
    pub fn provider(mut self, value: impl Into<String>) -> Self {
        self.provider = Some(value.into());
        self
    }

    /// The token endpoint URL (HTTPS).
    pub fn token_endpoint(mut self, value: impl Into<String>) -> Self {
        self.token_endpoint = Some(value.into());
        self
    }

    /// Or: the issuer whose metadata (RFC 8414, then OpenID discovery) names the token endpoint.
    pub fn issuer(mut self, value: impl Into<String>) -> Self {
        self.issuer = Some(value.into());
        self
    }

    /// A tag of the credential.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Where the subject token comes from when the request carries none (a slot that acts as a
    /// fixed identity). The request's own token always comes first.
    pub fn subject_source(mut self, source: impl TokenSource) -> Self {
        self.subject_source = Some(std::sync::Arc::new(source));
        self
    }

    /// Where the actor token comes from, for delegation (the issued token's `act` names it).
    pub fn actor_source(mut self, source: impl TokenSource) -> Self {
        self.actor_source = Some(std::sync::Arc::new(source));
        self
    }

    /// Allows a plain-HTTP token endpoint on a loopback address (tests, local servers).
    pub fn allow_http_loopback(mut self, value: bool) -> Self {
        self.allow_http_loopback = value;
        self
    }

    /// The client secret (for `client_secret_basic` and `client_secret_post`).
    pub fn client_secret(mut self, value: Secret) -> Self {
        self.client_secret = Some(value);
        self
    }

    /// The private key that signs client assertions (for `private_key_jwt`, RFC 7523).
    pub fn private_key(mut self, value: PrivateKey) -> Self {
        self.private_key = Some(value);
        self
    }

    /// How the client authenticates (`client_secret_basic` by default).
    pub fn client_auth(mut self, value: ClientAuth) -> Self {
        self.client_auth = value;
        self
    }

    /// An audience to ask for (may be given several times).
    pub fn audience(mut self, value: impl Into<String>) -> Self {
        self.audiences.push(value.into());
        self
    }

    /// A resource to ask for, RFC 8707 (may be given several times).
    pub fn resource(mut self, value: impl Into<String>) -> Self {
        self.resources.push(value.into());
        self
    }

    /// The type of the subject token (an access token by default).
    pub fn subject_token_type(mut self, value: TokenType) -> Self {
        self.subject_token_type = value;
        self
    }

    /// The type of the actor token, when there is one (an access token by default).
    pub fn actor_token_type(mut self, value: TokenType) -> Self {
        self.actor_token_type = value;
        self
    }

    /// The type of token to ask for.
    pub fn requested_token_type(mut self, value: TokenType) -> Self {
        self.requested_token_type = Some(value);
        self
    }

    /// The lifetime assumed when the server gives no `expires_in` (300 s by default).
    pub fn default_lifetime(mut self, value: Duration) -> Self {
        self.default_lifetime = value;
        self
    }

    /// The scopes to ask for.
    ///
    /// ```
    /// let b = identity_token_exchange::ExchangeConfig::builder("r", "c").scopes(["a", "b"]);
    /// ```
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// An extra form parameter sent with every exchange (`requested_issuer`, ...). It may not
    /// set a parameter of the protocol's own.
    ///
    /// ```
    /// let err = identity_token_exchange::ExchangeConfig::builder("r", "c")
    ///     .token_endpoint("https://a.example/t").client_auth(identity_token_exchange::ClientAuth::None)
    ///     .extra_param("scope", "admin").build().unwrap_err();
    /// assert!(err.to_string().contains("extraParams"));
    /// ```
    pub fn extra_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }

    /// Checks and builds the configuration. Errors name the slot and the field.
    pub fn build(self) -> Result<ExchangeConfig, ConfigError> {
        let location = format!("token exchange `{}`", self.reference);
        let error = |field: &str, problem: &str| ConfigError::new(&location, Some(field), problem);
        let reference = CredentialRef::new(self.reference.clone())
            .map_err(|_| error("ref", "is not a valid credential ref"))?;
        if self.client_id.trim().is_empty() {
            return Err(error("clientId", "is empty"));
        }
        let endpoint = match (&self.token_endpoint, &self.issuer) {
            (Some(url), None) => Endpoint::Token(
                check_endpoint(url, self.allow_http_loopback)
                    .map_err(|p| error("tokenEndpoint", &p))?,
            ),
            (None, Some(url)) => Endpoint::Issuer(
                check_endpoint(url, self.allow_http_loopback).map_err(|p| error("issuer", &p))?,
                url.clone(),
            ),
            (Some(_), Some(_)) => {
                return Err(error(
                    "tokenEndpoint",
                    "and `issuer` are both set; give one",
                ));
            }
            (None, None) => {
                return Err(error(
                    "tokenEndpoint",
                    "is missing (or give the `issuer` to discover it from)",
                ));
            }
        };
        match (self.client_auth, &self.client_secret) {
            (ClientAuth::None, Some(_)) => {
                return Err(error(
                    "clientSecret",
                    "is set for a public client (client auth `none`)",
                ));
            }
            (ClientAuth::PrivateKeyJwt, Some(_)) => {
                return Err(error(
                    "clientSecret",
                    "is set for a client that signs assertions (`private_key_jwt`)",
                ));
            }
            (ClientAuth::PrivateKeyJwt, None) if self.private_key.is_none() => {
                return Err(error(
                    "privateKey",
                    "is missing; the client signs assertions (`private_key_jwt`)",
                ));
            }
            (ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost, None) => {
                return Err(error(
                    "clientSecret",
                    "is missing; the client authenticates with a secret",
                ));
            }
            (ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost, Some(secret))
                if secret.expose_secret().is_empty() =>
            {
                return Err(error("clientSecret", "is empty"));
            }
            _ => {}
        }
        for scope in &self.scopes {
            // RFC 6749 §3.3: a scope token is printable ASCII without space, `"` or `\`.
            if scope.is_empty()
                || !scope
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
            {
                return Err(error(
                    "requestedScopes",
                    "holds a scope that is empty or not a scope token",
                ));
            }
        }
        if self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(error("audience", "holds an empty audience"));
        }
        let mut resources = Vec::with_capacity(self.resources.len());
        for resource in &self.resources {
            // RFC 8707 §2: an absolute URI without a fragment.
            match Url::parse(resource) {
                Ok(url) if url.fragment().is_none() => resources.push(url),
                _ => {
                    return Err(error(
                        "resource",
                        "holds a value that is not an absolute URI without a fragment",
                    ));
                }
            }
        }
        for (name, _) in &self.extra_params {
            if RESERVED.contains(&name.as_str()) {
                return Err(error(
                    "extraParams",
                    &format!("sets `{name}`, a parameter of the protocol itself"),
                ));
            }
            if name.is_empty() {
                return Err(error("extraParams", "holds a parameter without a name"));
            }
        }
        if self.default_lifetime.is_zero() {
            return Err(error("defaultLifetime", "is zero"));
        }
        let client = ClientCredentials::new(
            self.client_id.clone(),
            self.client_auth,
            self.client_secret,
            self.private_key,
        )
        .map_err(|err| error("clientAuth", &err.to_string()))?;
        Ok(ExchangeConfig {
            reference,
            name: self.name,
            kind: self.kind,
            scope: self.scope,
            status: self.status,
            provider: self.provider,
            tags: self.tags,
            endpoint,
            allow_http_loopback: self.allow_http_loopback,
            subject_source: self.subject_source,
            actor_source: self.actor_source,
            client,
            scopes: self.scopes,
            audiences: self.audiences,
            resources,
            subject_token_type: self.subject_token_type,
            actor_token_type: self.actor_token_type,
            requested_token_type: self.requested_token_type,
            extra_params: self.extra_params,
            default_lifetime: self.default_lifetime,
        })
    }
}

/// HTTPS only; plain HTTP only to this machine, and only when allowed: the outbound policy's
/// URL checks, without judging the address (the store's policy does, when it is built and at
/// every connection).
pub(crate) fn check_endpoint(endpoint: &str, allow_http_loopback: bool) -> Result<Url, String> {
    identity_http::OutboundPolicy::default()
        .allow_http_loopback(allow_http_loopback)
        .allow_private(true)
        .check_url(endpoint, "the URL")
        .map_err(|err| match err {
            identity_core::Error::Protocol {
                description: Some(problem),
                ..
            } => problem.trim_start_matches("`the URL` ").to_owned(),
            other => other.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ExchangeConfigBuilder {
        ExchangeConfig::builder("crm", "agent")
            .token_endpoint("https://auth.example.com/token")
            .client_secret(Secret::new("s3cret"))
    }

    #[test]
    fn a_valid_configuration_builds() {
        let config = base()
            .audience("https://crm.example.com")
            .resource("https://crm.example.com/api")
            .scopes(["crm:read", "crm:write"])
            .extra_param("requested_issuer", "corp")
            .build()
            .unwrap();
        assert_eq!(config.audiences(), ["https://crm.example.com"]);
        assert_eq!(
            config.resources()[0].as_str(),
            "https://crm.example.com/api"
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn mistakes_name_the_field() {
        let cases: Vec<(ExchangeConfigBuilder, &str)> = vec![
            (
                ExchangeConfig::builder("crm", "agent").client_secret(Secret::new("s")),
                "tokenEndpoint",
            ),
            (
                base().token_endpoint("http://auth.example.com/token"),
                "tokenEndpoint",
            ),
            (
                base().token_endpoint("http://127.0.0.1:8080/token"),
                "tokenEndpoint",
            ),
            (
                base().token_endpoint("https://user:pw@auth.example.com/token"),
                "tokenEndpoint",
            ),
            (
                base().token_endpoint("javascript:alert(1)"),
                "tokenEndpoint",
            ),
            (base().client_auth(ClientAuth::None), "clientSecret"),
            (
                ExchangeConfig::builder("crm", "agent").token_endpoint("https://a.example/t"),
                "clientSecret",
            ),
            (base().client_secret(Secret::new("")), "clientSecret"),
            (base().scopes(["crm read"]), "requestedScopes"),
            (base().scopes([""]), "requestedScopes"),
            (base().audience(" "), "audience"),
            (base().resource("/relative"), "resource"),
            (base().resource("https://crm.example.com/#frag"), "resource"),
            (base().extra_param("subject_token", "x"), "extraParams"),
            (base().extra_param("audience", "x"), "extraParams"),
            (
                ExchangeConfig::builder("crm", " ")
                    .token_endpoint("https://a.example/t")
                    .client_secret(Secret::new("s")),
                "clientId",
            ),
            (base().default_lifetime(Duration::ZERO), "defaultLifetime"),
        ];
        for (builder, field) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{err}");
            assert!(err.location.contains("`crm`"), "{err}");
        }
    }

    #[test]
    fn loopback_http_only_when_allowed() {
        let allowed = base()
            .token_endpoint("http://127.0.0.1:8080/token")
            .allow_http_loopback(true)
            .build();
        assert!(allowed.is_ok());
        let remote = base()
            .token_endpoint("http://auth.example.com/token")
            .allow_http_loopback(true)
            .build();
        assert!(remote.is_err());
    }
}
