//! Dynamic client registration (RFC 7591) and its management (RFC 7592).

use std::fmt;

use identity_core::{Error, OffsetDateTime, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use identity_http::{
    AuthorizationServerMetadata, OAuthError, OutboundPolicy, invalid_metadata, read_oauth_answer,
};

use crate::BACKEND;

/// The metadata a client registers with (RFC 7591 §2). Fields left empty are not sent.
///
/// ```
/// let metadata = identity_dcr::ClientMetadata::service("billing-agent", "crm:read");
/// assert_eq!(metadata.grant_types, ["client_credentials"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientMetadata {
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Redirect URIs, for the authorization code grant.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grant types the client will use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    /// Response types the client will use.
    #[serde(default)]
    pub response_types: Vec<String>,
    /// How the client authenticates at the token endpoint (`client_secret_basic`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Space-separated scopes the client may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// An identifier of the software, the same for every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// The software's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// Whom to contact about the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// A page describing the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
}

impl ClientMetadata {
    /// A confidential service client: `client_credentials`, `client_secret_basic`, no
    /// redirects, `scope`.
    ///
    /// ```
    /// let m = identity_dcr::ClientMetadata::service("agent", "read");
    /// assert_eq!(m.token_endpoint_auth_method.as_deref(), Some("client_secret_basic"));
    /// ```
    pub fn service(client_name: impl Into<String>, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        Self {
            client_name: Some(client_name.into()),
            grant_types: vec!["client_credentials".into()],
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            scope: (!scope.is_empty()).then_some(scope),
            software_id: Some("agent-identity".into()),
            software_version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Self::default()
        }
    }
}

impl ClientMetadata {
    /// A confidential web client of the authorization code flow: `authorization_code` and
    /// `refresh_token`, one `redirect_uri`, `client_secret_basic`, `scope`.
    ///
    /// ```
    /// let m = identity_dcr::ClientMetadata::web_app("agent", "https://app.example.com/cb", "openid");
    /// assert_eq!(m.redirect_uris, ["https://app.example.com/cb"]);
    /// assert!(m.grant_types.contains(&"refresh_token".to_owned()));
    /// ```
    pub fn web_app(
        client_name: impl Into<String>,
        redirect_uri: impl Into<String>,
        scope: impl Into<String>,
    ) -> Self {
        let scope = scope.into();
        Self {
            client_name: Some(client_name.into()),
            redirect_uris: vec![redirect_uri.into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            scope: (!scope.is_empty()).then_some(scope),
            software_id: Some("agent-identity".into()),
            software_version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Self::default()
        }
    }
}

/// A client an authorization server registered: what it answered (RFC 7591 §3.2.1), kept with
/// the issuer it belongs to. `Debug` shows no secret and no registration access token.
#[derive(Clone)]
#[non_exhaustive]
pub struct RegisteredClient {
    /// The issuer that registered the client; a changed issuer means a new registration.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret, for confidential clients.
    pub client_secret: Option<Secret>,
    /// When the secret expires; `None` when it does not.
    pub client_secret_expires_at: Option<OffsetDateTime>,
    /// The token for RFC 7592 management of this registration.
    pub registration_access_token: Option<Secret>,
    /// Where this registration is managed (RFC 7592).
    pub registration_client_uri: Option<Url>,
    /// The metadata as the server registered it.
    pub metadata: ClientMetadata,
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret_expires_at", &self.client_secret_expires_at)
            .field(
                "registration_client_uri",
                &self.registration_client_uri.as_ref().map(Url::as_str),
            )
            .finish_non_exhaustive()
    }
}

impl RegisteredClient {
    /// True when the secret has expired at `now` (it must be registered again).
    ///
    /// ```
    /// # use identity_dcr::RegisteredClient;
    /// # fn check(client: &RegisteredClient) {
    /// let usable = !client.secret_expired_at(identity_core::OffsetDateTime::now_utc());
    /// # }
    /// ```
    pub fn secret_expired_at(&self, now: OffsetDateTime) -> bool {
        self.client_secret_expires_at.is_some_and(|at| at <= now)
    }

    /// A client from a registration answer (RFC 7591 §3.2.1) of `issuer`'s server: what a
    /// [`ClientPersistence`](crate::ClientPersistence) of another kind, or a pre-registered
    /// client, starts from. The answer is checked as a registration's is.
    ///
    /// ```
    /// let answer = serde_json::json!({"client_id": "c1", "client_secret": "s", "client_secret_expires_at": 0});
    /// let client = identity_dcr::RegisteredClient::from_registration_answer("https://as.example.com", answer)?;
    /// assert_eq!(client.client_id, "c1");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn from_registration_answer(issuer: &str, answer: Value) -> Result<Self, Error> {
        Self::from_answer(issuer, answer, &OutboundPolicy::default(), None)
    }

    /// The client whose id is the URL of its metadata document (Client ID Metadata Documents):
    /// nothing is registered, the server reads the document itself. It has no secret.
    pub(crate) fn from_metadata_document(
        issuer: &str,
        document: &Url,
        metadata: &ClientMetadata,
    ) -> Result<Self, Error> {
        if document.scheme() != "https" || document.host().is_none() || document.path() == "/" {
            return Err(Error::InvalidArgument {
                argument: "client metadata document",
                problem: "must be an https URL with a path".into(),
            });
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            client_id: document.to_string(),
            client_secret: None,
            client_secret_expires_at: None,
            registration_access_token: None,
            registration_client_uri: None,
            metadata: metadata.clone(),
        })
    }

    /// Reads a registration answer from `issuer`'s server, checking what RFC 7591 requires.
    pub(crate) fn from_answer(
        issuer: &str,
        answer: Value,
        policy: &OutboundPolicy,
        previous: Option<&RegisteredClient>,
    ) -> Result<Self, Error> {
        let what = format!("registration at `{issuer}`");
        let Value::Object(mut fields) = answer else {
            return Err(invalid_metadata(&what, "the answer is not a JSON object"));
        };
        let mut take_str = |name: &str| match fields.remove(name) {
            Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(invalid_metadata(
                &what,
                &format!("`{name}` is not a string"),
            )),
        };
        let client_id = take_str("client_id")?
            .ok_or_else(|| invalid_metadata(&what, "the answer has no `client_id`"))?;
        let client_secret = take_str("client_secret")?.map(Secret::new);
        let registration_access_token = take_str("registration_access_token")?.map(Secret::new);
        let registration_client_uri = take_str("registration_client_uri")?
            .map(|uri| policy.check_url(&uri, "registration_client_uri"))
            .transpose()?;
        let client_secret_expires_at = match fields.remove("client_secret_expires_at") {
            None | Some(Value::Null) => None,
            // RFC 7591 §3.2.1: 0 means the secret does not expire.
            Some(Value::Number(n)) if n.as_i64() == Some(0) => None,
            Some(Value::Number(n)) => Some(
                n.as_i64()
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                    .ok_or_else(|| {
                        invalid_metadata(&what, "`client_secret_expires_at` is out of range")
                    })?,
            ),
            Some(_) => {
                return Err(invalid_metadata(
                    &what,
                    "`client_secret_expires_at` is not a number",
                ));
            }
        };
        let metadata: ClientMetadata = serde_json::from_value(Value::Object(
            fields
                .into_iter()
                .filter(|(name, _)| KNOWN_METADATA.contains(&name.as_str()))
                .collect::<Map<_, _>>(),
        ))
        .map_err(|err| invalid_metadata(&what, &format!("client metadata: {err}")))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            client_id,
            // RFC 7592 §2.2: a read or update may leave out what did not change.
            client_secret: client_secret.or_else(|| previous.and_then(|p| p.client_secret.clone())),
            client_secret_expires_at,
            registration_access_token: registration_access_token
                .or_else(|| previous.and_then(|p| p.registration_access_token.clone())),
            registration_client_uri: registration_client_uri
                .or_else(|| previous.and_then(|p| p.registration_client_uri.clone())),
            metadata,
        })
    }
}

const KNOWN_METADATA: &[&str] = &[
    "client_name",
    "redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
    "scope",
    "software_id",
    "software_version",
    "contacts",
    "client_uri",
];

/// A registration or management answer read by the one OAuth error model: its JSON object
/// when the status is `expected`, a typed error otherwise (a refusal with its code, a 405 not
/// supported, a 5xx or 429 unavailable).
fn expect_answer(
    answer: &identity_http::Answer,
    expected: &[u16],
    what: &str,
) -> Result<Value, Error> {
    let object = read_oauth_answer(answer).map_err(|err| err.into_error(BACKEND))?;
    if !expected.contains(&answer.status) {
        return Err(OAuthError::InvalidResponse {
            status: answer.status,
            problem: format!("{what}: an unexpected status"),
        }
        .into_error(BACKEND));
    }
    Ok(Value::Object(object))
}

impl crate::Dcr {
    /// Registers a client with `server` (RFC 7591), with an initial access token when the
    /// registration endpoint demands one. The answer must be a 201 with a `client_id`.
    ///
    /// ```no_run
    /// # async fn example(dcr: identity_dcr::Dcr, server: identity_http::AuthorizationServerMetadata) -> Result<(), identity_core::Error> {
    /// let client = dcr.register(&server, &identity_dcr::ClientMetadata::service("agent", "read"), None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn register(
        &self,
        server: &AuthorizationServerMetadata,
        metadata: &ClientMetadata,
        initial_access_token: Option<&Secret>,
    ) -> Result<RegisteredClient, Error> {
        let what = format!("registration at `{}`", server.issuer);
        let endpoint =
            server
                .registration_endpoint
                .as_ref()
                .ok_or_else(|| Error::NotSupported {
                    operation: "dynamic client registration (no registration_endpoint)",
                    backend: BACKEND,
                })?;
        let mut request = self
            .http
            .request(reqwest::Method::POST, endpoint)
            .json(metadata);
        if let Some(token) = initial_access_token {
            request = request.bearer_auth(token.expose_secret());
        }
        let answer = self.http.send(request, &what).await?;
        let body = expect_answer(&answer, &[201], &what)?;
        RegisteredClient::from_answer(&server.issuer, body, self.http.policy(), None)
    }

    /// Reads the registration as the server holds it now (RFC 7592 §2.1).
    ///
    /// ```no_run
    /// # async fn example(dcr: identity_dcr::Dcr, client: identity_dcr::RegisteredClient) -> Result<(), identity_core::Error> {
    /// let current = dcr.read(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read(&self, client: &RegisteredClient) -> Result<RegisteredClient, Error> {
        let (uri, token) = management(client)?;
        let what = format!("read of client `{}`", client.client_id);
        let request = self
            .http
            .request(reqwest::Method::GET, uri)
            .bearer_auth(token.expose_secret());
        let answer = self.http.send(request, &what).await?;
        let body = expect_answer(&answer, &[200], &what)?;
        RegisteredClient::from_answer(&client.issuer, body, self.http.policy(), Some(client))
    }

    /// Replaces the registration's metadata (RFC 7592 §2.2); the answer is the registration now.
    ///
    /// ```no_run
    /// # async fn example(dcr: identity_dcr::Dcr, client: identity_dcr::RegisteredClient) -> Result<(), identity_core::Error> {
    /// let mut metadata = client.metadata.clone();
    /// metadata.client_name = Some("renamed".into());
    /// let updated = dcr.update(&client, &metadata).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(
        &self,
        client: &RegisteredClient,
        metadata: &ClientMetadata,
    ) -> Result<RegisteredClient, Error> {
        let (uri, token) = management(client)?;
        let what = format!("update of client `{}`", client.client_id);
        let mut body = serde_json::to_value(metadata).unwrap_or_default();
        body["client_id"] = Value::String(client.client_id.clone());
        if let Some(secret) = &client.client_secret {
            body["client_secret"] = Value::String(secret.expose_secret().to_owned());
        }
        let request = self
            .http
            .request(reqwest::Method::PUT, uri)
            .bearer_auth(token.expose_secret())
            .json(&body);
        let answer = self.http.send(request, &what).await?;
        let body = expect_answer(&answer, &[200], &what)?;
        RegisteredClient::from_answer(&client.issuer, body, self.http.policy(), Some(client))
    }

    /// Deletes the registration (RFC 7592 §2.3).
    ///
    /// ```no_run
    /// # async fn example(dcr: identity_dcr::Dcr, client: identity_dcr::RegisteredClient) -> Result<(), identity_core::Error> {
    /// dcr.delete(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, client: &RegisteredClient) -> Result<(), Error> {
        let (uri, token) = management(client)?;
        let what = format!("delete of client `{}`", client.client_id);
        let request = self
            .http
            .request(reqwest::Method::DELETE, uri)
            .bearer_auth(token.expose_secret());
        let answer = self.http.send(request, &what).await?;
        expect_answer(&answer, &[200, 204], &what)?;
        Ok(())
    }
}

fn management(client: &RegisteredClient) -> Result<(&Url, &Secret), Error> {
    match (
        &client.registration_client_uri,
        &client.registration_access_token,
    ) {
        (Some(uri), Some(token)) => Ok((uri, token)),
        _ => Err(Error::NotSupported {
            operation: "registration management (no registration_client_uri or access token)",
            backend: BACKEND,
        }),
    }
}
