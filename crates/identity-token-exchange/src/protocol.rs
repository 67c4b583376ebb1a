//! The token exchange request and the reading of its answer (RFC 8693 §2, RFC 6749 §5).

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use identity_core::{Error, Secret};
use serde_json::{Map, Value};
use url::Url;
use url::form_urlencoded::{Serializer, byte_serialize};

use crate::config::{ClientAuth, ExchangeConfig};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const BACKEND: &str = "token-exchange";

/// One token request, ready to send: `POST` to [`TokenRequest::url`] with
/// `Content-Type: application/x-www-form-urlencoded`, the body [`TokenRequest::body`] and, for
/// `client_secret_basic`, the `Authorization` header [`TokenRequest::authorization`].
///
/// Body and header carry secrets (the subject token, the client secret) and are [`Secret`]s;
/// `Debug` shows the URL only.
pub struct TokenRequest {
    url: Url,
    body: Secret,
    authorization: Option<Secret>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl TokenRequest {
    /// The request exchanging `subject` (and `actor`, for delegation) under `config`, to the
    /// token endpoint `endpoint` (the configured one, or the one discovered from the issuer).
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_token_exchange::{ExchangeConfig, TokenRequest, ClientAuth};
    /// let config = ExchangeConfig::builder("r", "agent").token_endpoint("https://a.example/token")
    ///     .client_auth(ClientAuth::None).audience("svc").build()?;
    /// let request = TokenRequest::new(config.token_endpoint().unwrap(), &config, &Secret::new("tok"), None);
    /// assert!(request.body().expose_secret().contains("audience=svc"));
    /// assert!(request.authorization().is_none());
    /// # Ok::<(), identity_core::ConfigError>(())
    /// ```
    pub fn new(
        endpoint: &Url,
        config: &ExchangeConfig,
        subject: &Secret,
        actor: Option<&Secret>,
    ) -> Self {
        let mut form = Serializer::new(String::new());
        form.append_pair("grant_type", GRANT_TYPE);
        form.append_pair("subject_token", subject.expose_secret());
        form.append_pair("subject_token_type", config.subject_token_type.as_str());
        if let Some(actor) = actor {
            form.append_pair("actor_token", actor.expose_secret());
            form.append_pair("actor_token_type", config.actor_token_type.as_str());
        }
        if let Some(requested) = &config.requested_token_type {
            form.append_pair("requested_token_type", requested.as_str());
        }
        for audience in &config.audiences {
            form.append_pair("audience", audience);
        }
        for resource in &config.resources {
            form.append_pair("resource", resource.as_str());
        }
        if !config.scopes.is_empty() {
            form.append_pair("scope", &config.scopes.join(" "));
        }
        for (name, value) in &config.extra_params {
            form.append_pair(name, value);
        }
        let authorization = match config.client_auth {
            ClientAuth::ClientSecretBasic => {
                // RFC 6749 §2.3.1: id and secret are form-encoded before they are joined.
                let secret = config
                    .client_secret
                    .as_ref()
                    .map_or("", Secret::expose_secret);
                let pair = format!("{}:{}", form_encode(&config.client_id), form_encode(secret));
                Some(Secret::new(format!("Basic {}", STANDARD.encode(pair))))
            }
            ClientAuth::ClientSecretPost => {
                form.append_pair("client_id", &config.client_id);
                let secret = config
                    .client_secret
                    .as_ref()
                    .map_or("", Secret::expose_secret);
                form.append_pair("client_secret", secret);
                None
            }
            ClientAuth::None => {
                form.append_pair("client_id", &config.client_id);
                None
            }
        };
        Self {
            url: endpoint.clone(),
            body: Secret::new(form.finish()),
            authorization,
        }
    }

    /// Where to send it.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The form-encoded body.
    pub fn body(&self) -> &Secret {
        &self.body
    }

    /// The `Authorization` header value, for `client_secret_basic`.
    pub fn authorization(&self) -> Option<&Secret> {
        self.authorization.as_ref()
    }
}

fn form_encode(text: &str) -> String {
    byte_serialize(text.as_bytes()).collect()
}

/// A token the server issued.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExchangedToken {
    /// The token (RFC 8693 names it `access_token` whatever its type).
    pub access_token: Secret,
    /// What the token is (`issued_token_type`).
    pub issued_token_type: String,
    /// How long it lives: `expires_in`, or the configuration's default lifetime when absent.
    pub lifetime: Duration,
    /// True when the server gave `expires_in`.
    pub lifetime_from_server: bool,
    /// The scope granted, when the server says (it may differ from the scope asked for).
    pub scope: Option<String>,
}

/// An OAuth error code from the token endpoint (RFC 6749 §5.2, RFC 8693 §2.2.2).
///
/// ```
/// use identity_token_exchange::OAuthErrorCode;
/// assert_eq!(OAuthErrorCode::from("invalid_target").as_str(), "invalid_target");
/// assert_eq!(OAuthErrorCode::from("slow_down"), OAuthErrorCode::Other("slow_down".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// The request is malformed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The subject (or actor) token is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use token exchange.
    UnauthorizedClient,
    /// The server does not support token exchange.
    UnsupportedGrantType,
    /// The scope asked for is invalid or exceeds what the subject may have.
    InvalidScope,
    /// The audience or resource asked for is unknown or not allowed (RFC 8693).
    InvalidTarget,
    /// Another code.
    Other(String),
}

impl OAuthErrorCode {
    /// The code as the server sent it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::Other(code) => code,
        }
    }
}

impl From<&str> for OAuthErrorCode {
    fn from(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an exchange gave no token. No variant carries a token or a secret; a server's
/// description is kept only when it is short printable text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The server refused with an OAuth error.
    #[error("the authorization server refused the exchange: `{code}`{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The OAuth error code.
        code: OAuthErrorCode,
        /// The server's `error_description`, when usable.
        description: Option<String>,
    },
    /// The server is unavailable or asks to slow down (5xx, 429); the call may be retried.
    #[error("the authorization server answered {status}; try again{}", retry_after.map(|d| format!(" after {} s", d.as_secs())).unwrap_or_default())]
    Retryable {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, in seconds, when it gave one.
        retry_after: Option<Duration>,
    },
    /// The server could not be reached, or did not answer in time; the call may be retried.
    #[error("the authorization server could not be reached: {detail}")]
    Transport {
        /// What happened (no URL, no token).
        detail: String,
    },
    /// The server answered something the protocol does not allow.
    #[error("the authorization server's answer is not valid: {problem}")]
    InvalidResponse {
        /// The HTTP status.
        status: u16,
        /// What is wrong with it.
        problem: String,
    },
}

impl ExchangeError {
    /// True when the same request may succeed later.
    ///
    /// ```
    /// use identity_token_exchange::ExchangeError;
    /// assert!(ExchangeError::Retryable { status: 503, retry_after: None }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. } | Self::Transport { .. })
    }
}

impl From<ExchangeError> for Error {
    fn from(err: ExchangeError) -> Self {
        match err {
            // The server's description is left out: a server may quote what it was sent (the
            // caller's token), and this error reaches denials and logs. The code says enough.
            ExchangeError::Refused { code, .. } => Error::Protocol {
                backend: BACKEND,
                code: code.as_str().to_owned(),
                description: None,
            },
            other @ (ExchangeError::Retryable { .. }
            | ExchangeError::Transport { .. }
            | ExchangeError::InvalidResponse { .. }) => {
                Error::unavailable(BACKEND, other.to_string())
            }
        }
    }
}

/// Reads the token endpoint's answer: its status, its `Retry-After` header and its body.
///
/// A success (200) must be a JSON object with a non-empty `access_token`, an `issued_token_type`
/// and a `token_type` of `Bearer` or `N_A` (compared without case); `expires_in` is optional
/// (the configuration's default lifetime stands in), `null` counts as absent. A 400 or 401 with
/// an RFC 6749 error object is [`ExchangeError::Refused`]; 429 and 5xx are
/// [`ExchangeError::Retryable`]; anything else (a redirect, a page of HTML, a success without a
/// token) is [`ExchangeError::InvalidResponse`].
///
/// ```
/// use identity_token_exchange::{ExchangeConfig, ExchangeError, OAuthErrorCode, read_token_response, ClientAuth};
/// let config = ExchangeConfig::builder("r", "c").token_endpoint("https://a.example/t")
///     .client_auth(ClientAuth::None).build()?;
/// let refused = read_token_response(&config, 400, None, br#"{"error":"invalid_scope"}"#).unwrap_err();
/// assert_eq!(refused, ExchangeError::Refused { code: OAuthErrorCode::InvalidScope, description: None });
/// # Ok::<(), identity_core::ConfigError>(())
/// ```
pub fn read_token_response(
    config: &ExchangeConfig,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<ExchangedToken, ExchangeError> {
    let invalid = |problem: &str| ExchangeError::InvalidResponse {
        status,
        problem: problem.to_owned(),
    };
    match status {
        200 => {}
        400 | 401 => {
            let object = json_object(body)
                .ok_or_else(|| invalid("an error answer that is not an OAuth error object"))?;
            let code = non_empty_str(&object, "error")
                .ok_or_else(|| invalid("an error answer without an `error` code"))?;
            return Err(ExchangeError::Refused {
                code: OAuthErrorCode::from(code),
                description: non_empty_str(&object, "error_description").and_then(printable),
            });
        }
        429 | 500..=599 => {
            return Err(ExchangeError::Retryable {
                status,
                retry_after: retry_after.and_then(delay_seconds),
            });
        }
        _ => return Err(invalid(&format!("an unexpected status {status}"))),
    }
    let object =
        json_object(body).ok_or_else(|| invalid("a success whose body is not a JSON object"))?;
    let access_token =
        non_empty_str(&object, "access_token").ok_or_else(|| invalid("no `access_token`"))?;
    let issued_token_type = non_empty_str(&object, "issued_token_type")
        .ok_or_else(|| invalid("no `issued_token_type`"))?;
    let token_type =
        non_empty_str(&object, "token_type").ok_or_else(|| invalid("no `token_type`"))?;
    if !token_type.eq_ignore_ascii_case("bearer") && !token_type.eq_ignore_ascii_case("n_a") {
        return Err(invalid("a `token_type` other than Bearer or N_A"));
    }
    let expires_in = match object.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| invalid("an `expires_in` that is not a whole number of seconds"))?,
        ),
        // Some servers send the number as a string.
        Some(Value::String(text)) => Some(
            text.trim()
                .parse::<u64>()
                .map_err(|_| invalid("an `expires_in` that is not a number"))?,
        ),
        Some(_) => return Err(invalid("an `expires_in` that is not a number")),
    };
    Ok(ExchangedToken {
        access_token: Secret::new(access_token),
        issued_token_type: issued_token_type.to_owned(),
        lifetime: expires_in.map_or(config.default_lifetime, Duration::from_secs),
        lifetime_from_server: expires_in.is_some(),
        scope: non_empty_str(&object, "scope").map(str::to_owned),
    })
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

fn non_empty_str<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// A server's description, kept when it is short printable text (it ends up in logs).
fn printable(text: &str) -> Option<String> {
    let ok = text.len() <= 300 && !text.chars().any(char::is_control);
    ok.then(|| text.to_owned())
}

/// `Retry-After` as a number of seconds (the HTTP-date form is not used by token endpoints in
/// practice and counts as absent), capped at ten minutes.
fn delay_seconds(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenType;
    use url::form_urlencoded::parse;

    fn config(auth: ClientAuth) -> ExchangeConfig {
        let builder = ExchangeConfig::builder("crm", "agent:one")
            .token_endpoint("https://auth.example.com/token")
            .client_auth(auth)
            .audience("https://crm.example.com")
            .audience("urn:crm")
            .resource("https://crm.example.com/api")
            .scopes(["crm:read", "crm:write"])
            .requested_token_type(TokenType::JWT)
            .extra_param("requested_issuer", "corp");
        match auth {
            ClientAuth::None => builder.build().unwrap(),
            _ => builder
                .client_secret(Secret::new("p@ss:w%rd"))
                .build()
                .unwrap(),
        }
    }

    fn endpoint() -> Url {
        Url::parse("https://auth.example.com/token").unwrap()
    }

    fn form_of(request: &TokenRequest) -> Vec<(String, String)> {
        parse(request.body().expose_secret().as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn the_request_carries_every_parameter_of_rfc_8693() {
        let request = TokenRequest::new(
            &endpoint(),
            &config(ClientAuth::ClientSecretBasic),
            &Secret::new("subj&tok=en"),
            Some(&Secret::new("act")),
        );
        let form = form_of(&request);
        let get = |k: &str| {
            form.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("grant_type"), [GRANT_TYPE]);
        assert_eq!(get("subject_token"), ["subj&tok=en"]);
        assert_eq!(
            get("subject_token_type"),
            [TokenType::ACCESS_TOKEN.as_str()]
        );
        assert_eq!(get("actor_token"), ["act"]);
        assert_eq!(get("actor_token_type"), [TokenType::ACCESS_TOKEN.as_str()]);
        assert_eq!(get("requested_token_type"), [TokenType::JWT.as_str()]);
        assert_eq!(get("audience"), ["https://crm.example.com", "urn:crm"]);
        assert_eq!(get("resource"), ["https://crm.example.com/api"]);
        assert_eq!(get("scope"), ["crm:read crm:write"]);
        assert_eq!(get("requested_issuer"), ["corp"]);
        assert!(get("client_secret").is_empty() && get("client_id").is_empty());
        assert!(!format!("{request:?}").contains("subj"));
    }

    #[test]
    fn basic_authentication_form_encodes_id_and_secret_first() {
        let request = TokenRequest::new(
            &endpoint(),
            &config(ClientAuth::ClientSecretBasic),
            &Secret::new("s"),
            None,
        );
        let header = request.authorization().unwrap().expose_secret();
        let decoded = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "agent%3Aone:p%40ss%3Aw%25rd"
        );
    }

    #[test]
    fn post_and_public_clients_put_their_id_in_the_body() {
        let post = TokenRequest::new(
            &endpoint(),
            &config(ClientAuth::ClientSecretPost),
            &Secret::new("s"),
            None,
        );
        let form = form_of(&post);
        assert!(form.contains(&("client_id".into(), "agent:one".into())));
        assert!(form.contains(&("client_secret".into(), "p@ss:w%rd".into())));
        assert!(post.authorization().is_none());
        let public = TokenRequest::new(
            &endpoint(),
            &config(ClientAuth::None),
            &Secret::new("s"),
            None,
        );
        let form = form_of(&public);
        assert!(form.contains(&("client_id".into(), "agent:one".into())));
        assert!(!form.iter().any(|(n, _)| n == "client_secret"));
    }

    fn read(
        status: u16,
        retry_after: Option<&str>,
        body: &str,
    ) -> Result<ExchangedToken, ExchangeError> {
        read_token_response(
            &config(ClientAuth::None),
            status,
            retry_after,
            body.as_bytes(),
        )
    }

    #[test]
    fn a_success_is_read_leniently_where_servers_differ() {
        let token = read(200, None, r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"bearer","expires_in":60,"scope":"crm:read"}"#).unwrap();
        assert_eq!(
            (token.lifetime, token.lifetime_from_server),
            (Duration::from_secs(60), true)
        );
        assert_eq!(token.scope.as_deref(), Some("crm:read"));
        let token = read(200, None, r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"N_A","expires_in":null,"refresh_token":null}"#).unwrap();
        assert_eq!(
            (token.lifetime, token.lifetime_from_server),
            (Duration::from_secs(300), false)
        );
        let token = read(200, None, r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"BEARER","expires_in":"120"}"#).unwrap();
        assert_eq!(token.lifetime, Duration::from_secs(120));
    }

    #[test]
    fn a_success_without_what_the_rfc_requires_is_invalid() {
        for body in [
            r#"{"issued_token_type":"urn:x","token_type":"Bearer"}"#,
            r#"{"access_token":"","issued_token_type":"urn:x","token_type":"Bearer"}"#,
            r#"{"access_token":"t","token_type":"Bearer"}"#,
            r#"{"access_token":"t","issued_token_type":"urn:x"}"#,
            r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"DPoP"}"#,
            r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"Bearer","expires_in":-5}"#,
            r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"Bearer","expires_in":1.5}"#,
            r#"{"access_token":7,"issued_token_type":"urn:x","token_type":"Bearer"}"#,
            "<html>ok</html>",
            "[]",
        ] {
            assert!(
                matches!(
                    read(200, None, body),
                    Err(ExchangeError::InvalidResponse { .. })
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn oauth_errors_become_typed_refusals() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_target",
        ] {
            let err = read(
                400,
                None,
                &format!(r#"{{"error":"{code}","error_description":"nope"}}"#),
            )
            .unwrap_err();
            match err {
                ExchangeError::Refused {
                    code: got,
                    description,
                } => {
                    assert_eq!(got.as_str(), code);
                    assert!(!matches!(got, OAuthErrorCode::Other(_)), "{code}");
                    assert_eq!(description.as_deref(), Some("nope"));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let err = read(
            401,
            None,
            r#"{"error":"invalid_client","error_description":"line\nbreak"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ExchangeError::Refused {
                code: OAuthErrorCode::InvalidClient,
                description: None
            }
        );
        let mapped: Error = err.into();
        assert!(matches!(mapped, Error::Protocol { ref code, .. } if code == "invalid_client"));
        // A description that quotes the subject token never leaves this crate's error.
        let quoting = read(
            400,
            None,
            r#"{"error":"invalid_grant","error_description":"token subj-123 expired"}"#,
        )
        .unwrap_err();
        let mapped: Error = quoting.into();
        assert!(!mapped.to_string().contains("subj-123"), "{mapped}");
        assert!(matches!(
            read(400, None, "not json"),
            Err(ExchangeError::InvalidResponse { .. })
        ));
        assert!(matches!(
            read(400, None, r#"{"message":"bad"}"#),
            Err(ExchangeError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn overload_and_outage_are_retryable_with_the_servers_delay() {
        let err = read(429, Some("7"), "").unwrap_err();
        assert_eq!(
            err,
            ExchangeError::Retryable {
                status: 429,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(err.is_retryable());
        assert_eq!(
            read(503, Some("99999"), "").unwrap_err(),
            ExchangeError::Retryable {
                status: 503,
                retry_after: Some(Duration::from_secs(600))
            }
        );
        assert_eq!(
            read(500, Some("Wed, 21 Oct 2026 07:28:00 GMT"), "").unwrap_err(),
            ExchangeError::Retryable {
                status: 500,
                retry_after: None
            }
        );
        let mapped: Error = read(502, None, "").unwrap_err().into();
        assert!(mapped.is_retryable());
        for status in [201, 204, 301, 302, 403, 404] {
            assert!(
                matches!(
                    read(status, None, "{}"),
                    Err(ExchangeError::InvalidResponse { .. })
                ),
                "{status}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn no_answer_makes_the_reader_panic(status in 0u16..1000, body in proptest::collection::vec(proptest::num::u8::ANY, 0..256), retry in proptest::option::of("[0-9a-zA-Z ,:]{0,12}")) {
            let _ = read_token_response(&config(ClientAuth::None), status, retry.as_deref(), &body);
        }

        #[test]
        fn json_answers_never_panic_and_only_a_200_grants(status in prop_status(), access in proptest::option::of("[a-z]{0,4}"), kind in proptest::option::of("(Bearer|bearer|N_A|mac|)"), expires in proptest::option::of(-5i64..100_000)) {
            let mut body = serde_json::Map::new();
            if let Some(a) = &access { body.insert("access_token".into(), a.clone().into()); }
            body.insert("issued_token_type".into(), "urn:x".into());
            if let Some(k) = &kind { body.insert("token_type".into(), k.clone().into()); }
            if let Some(e) = expires { body.insert("expires_in".into(), e.into()); }
            let result = read_token_response(&config(ClientAuth::None), status, None, serde_json::Value::Object(body).to_string().as_bytes());
            if result.is_ok() {
                proptest::prop_assert_eq!(status, 200);
            }
        }
    }

    fn prop_status() -> impl proptest::strategy::Strategy<Value = u16> {
        proptest::prop_oneof![proptest::strategy::Just(200u16), 100u16..600]
    }
}
