//! The token exchange request and the reading of its answer (RFC 8693 §2, RFC 6749 §5).

use std::fmt;
use std::time::Duration;

use identity_core::Secret;
use identity_http::{Answer, Form, OAuthError, TokenKind, TokenResponse};
use url::Url;

use crate::config::ExchangeConfig;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const BACKEND: &str = "token-exchange";

/// One token exchange request, ready to send: `POST` [`TokenRequest::form`] to
/// [`TokenRequest::url`], with the client's authentication added by
/// [`identity_http::HttpClient::token`] (an `Authorization` header, or form parameters).
///
/// The form carries the subject and actor tokens; `Debug` shows the URL only.
pub struct TokenRequest {
    url: Url,
    form: Form,
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
    /// assert_eq!(request.form().get("audience"), Some("svc"));
    /// assert!(!format!("{request:?}").contains("tok\""));
    /// # Ok::<(), identity_core::ConfigError>(())
    /// ```
    pub fn new(
        endpoint: &Url,
        config: &ExchangeConfig,
        subject: &Secret,
        actor: Option<&Secret>,
    ) -> Self {
        let mut form = Form::grant(GRANT_TYPE);
        form.push_secret("subject_token", subject.expose_secret());
        form.push("subject_token_type", config.subject_token_type.as_str());
        if let Some(actor) = actor {
            form.push_secret("actor_token", actor.expose_secret());
            form.push("actor_token_type", config.actor_token_type.as_str());
        }
        if let Some(requested) = &config.requested_token_type {
            form.push("requested_token_type", requested.as_str());
        }
        for audience in &config.audiences {
            form.push("audience", audience);
        }
        for resource in &config.resources {
            form.push("resource", resource.as_str());
        }
        if !config.scopes.is_empty() {
            form.push("scope", &config.scopes.join(" "));
        }
        for (name, value) in &config.extra_params {
            form.push(name, value);
        }
        Self {
            url: endpoint.clone(),
            form,
        }
    }

    /// Where to send it.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The form, without the client's authentication.
    pub fn form(&self) -> &Form {
        &self.form
    }
}

/// A token the server issued.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExchangedToken {
    /// The token (RFC 8693 names it `access_token` whatever its type).
    pub access_token: Secret,
    /// What the token is (`issued_token_type`).
    pub issued_token_type: String,
    /// How long it lives: `expires_in` (clamped to [0, one year]), or the configuration's
    /// default lifetime when absent.
    pub lifetime: Duration,
    /// True when the server gave `expires_in`.
    pub lifetime_from_server: bool,
    /// The scope granted, when the server says (it may differ from the scope asked for).
    pub scope: Option<String>,
}

/// Reads the token endpoint's answer by the one OAuth error model
/// ([`identity_http::read_oauth_answer`]: a 4xx with an error object is a refusal with its code,
/// 429 and 5xx retryable, 405 not supported) and the one token reader
/// ([`identity_http::TokenResponse`]: `expires_in` as a number or a numeric string, clamped),
/// then what RFC 8693 §2.2.1 requires of a success: an `issued_token_type`, and a `token_type`
/// of `Bearer` or `N_A`; `N_A` is refused for an access token (it says the token is not one to
/// present as a bearer token).
///
/// ```
/// use identity_http::{Answer, OAuthError, OAuthErrorCode};
/// use identity_token_exchange::{ExchangeConfig, read_token_response, ClientAuth};
/// let config = ExchangeConfig::builder("r", "c").token_endpoint("https://a.example/t")
///     .client_auth(ClientAuth::None).build()?;
/// let refused = read_token_response(&config, &Answer::new(400, None, br#"{"error":"invalid_scope"}"#.to_vec())).unwrap_err();
/// assert_eq!(refused, OAuthError::Refused { status: 400, code: OAuthErrorCode::InvalidScope });
/// # Ok::<(), identity_core::ConfigError>(())
/// ```
pub fn read_token_response(
    config: &ExchangeConfig,
    answer: &Answer,
) -> Result<ExchangedToken, OAuthError> {
    let token = TokenResponse::read(answer)?;
    let invalid = |problem: &str| OAuthError::InvalidResponse {
        status: answer.status,
        problem: problem.to_owned(),
    };
    let issued_token_type = token
        .issued_token_type
        .clone()
        .ok_or_else(|| invalid("no `issued_token_type`"))?;
    match token.kind {
        TokenKind::Bearer => {}
        TokenKind::NotApplicable
            if issued_token_type != crate::TokenType::ACCESS_TOKEN.as_str() => {}
        TokenKind::NotApplicable => {
            return Err(invalid(
                "an access token of type N_A, not usable as a bearer token",
            ));
        }
        TokenKind::Unstated => return Err(invalid("no `token_type`")),
        _ => return Err(invalid("a `token_type` other than Bearer or N_A")),
    }
    Ok(ExchangedToken {
        access_token: token.access_token,
        issued_token_type,
        lifetime: token.lifetime.unwrap_or(config.default_lifetime),
        lifetime_from_server: token.lifetime.is_some(),
        scope: token.scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientAuth;
    use crate::config::TokenType;
    use identity_http::OAuthErrorCode;

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

    #[test]
    fn the_request_carries_every_parameter_of_rfc_8693() {
        let request = TokenRequest::new(
            &endpoint(),
            &config(ClientAuth::ClientSecretBasic),
            &Secret::new("subj&tok=en"),
            Some(&Secret::new("act")),
        );
        let encoded = request.form().encode();
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(encoded.expose_secret().as_bytes())
                .into_owned()
                .collect();
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
        // The client authenticates through identity-http, not in this form.
        assert!(get("client_secret").is_empty() && get("client_id").is_empty());
        assert!(!format!("{request:?}").contains("subj"));
    }

    fn read(status: u16, body: &str) -> Result<ExchangedToken, OAuthError> {
        read_token_response(
            &config(ClientAuth::None),
            &Answer::new(status, None, body.as_bytes().to_vec()),
        )
    }

    #[test]
    fn a_success_is_read_leniently_where_servers_differ() {
        let token = read(200, r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"bearer","expires_in":60,"scope":"crm:read"}"#).unwrap();
        assert_eq!(
            (token.lifetime, token.lifetime_from_server),
            (Duration::from_secs(60), true)
        );
        assert_eq!(token.scope.as_deref(), Some("crm:read"));
        let token = read(200, r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"N_A","expires_in":null,"refresh_token":null}"#).unwrap();
        assert_eq!(
            (token.lifetime, token.lifetime_from_server),
            (Duration::from_secs(300), false)
        );
        let token = read(200, r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"BEARER","expires_in":"120"}"#).unwrap();
        assert_eq!(token.lifetime, Duration::from_secs(120));
        let token = read(200, r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"Bearer","expires_in":-5}"#).unwrap();
        assert_eq!(token.lifetime, Duration::ZERO);
    }

    #[test]
    fn a_success_without_what_the_rfc_requires_is_invalid() {
        for body in [
            r#"{"issued_token_type":"urn:x","token_type":"Bearer"}"#,
            r#"{"access_token":"","issued_token_type":"urn:x","token_type":"Bearer"}"#,
            r#"{"access_token":"t","token_type":"Bearer"}"#,
            r#"{"access_token":"t","issued_token_type":"urn:x"}"#,
            r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"DPoP"}"#,
            r#"{"access_token":"t","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"N_A"}"#,
            r#"{"access_token":"t","issued_token_type":"urn:x","token_type":"Bearer","expires_in":"soon"}"#,
            r#"{"access_token":7,"issued_token_type":"urn:x","token_type":"Bearer"}"#,
            "<html>ok</html>",
            "[]",
        ] {
            assert!(
                matches!(read(200, body), Err(OAuthError::InvalidResponse { .. })),
                "{body}"
            );
        }
    }

    #[test]
    fn oauth_errors_become_typed_refusals_whatever_the_4xx() {
        for status in [400, 401, 403] {
            let err = read(
                status,
                r#"{"error":"insufficient_scope","error_description":"nope"}"#,
            )
            .unwrap_err();
            assert_eq!(
                err,
                OAuthError::Refused {
                    status,
                    code: OAuthErrorCode::InsufficientScope
                }
            );
            assert!(!err.is_retryable());
            let mapped = err.into_error(BACKEND);
            assert!(
                matches!(&mapped, identity_core::Error::Protocol { code, .. } if code == "insufficient_scope"),
                "{mapped:?}"
            );
        }
        // A description that quotes the subject token never leaves the error.
        let quoting = read(
            400,
            r#"{"error":"invalid_grant","error_description":"token subj-123 expired"}"#,
        )
        .unwrap_err();
        let mapped = quoting.into_error(BACKEND);
        assert!(!mapped.to_string().contains("subj-123"), "{mapped}");
        assert!(matches!(
            read(400, "not json"),
            Err(OAuthError::InvalidResponse { .. })
        ));
        assert_eq!(read(405, "").unwrap_err(), OAuthError::NotSupported);
    }

    #[test]
    fn overload_and_outage_are_retryable() {
        let err = read_token_response(
            &config(ClientAuth::None),
            &Answer::new(429, Some(Duration::from_secs(7)), Vec::new()),
        )
        .unwrap_err();
        assert_eq!(
            err,
            OAuthError::Retryable {
                status: 429,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(err.is_retryable());
        assert!(err.into_error(BACKEND).is_retryable());
        assert!(read(502, "").unwrap_err().is_retryable());
    }

    proptest::proptest! {
        #[test]
        fn no_answer_makes_the_reader_panic(status in 0u16..1000, body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = read_token_response(&config(ClientAuth::None), &Answer::new(status, None, body));
        }

        #[test]
        fn json_answers_never_panic_and_only_a_2xx_grants(status in prop_status(), access in proptest::option::of("[a-z]{0,4}"), kind in proptest::option::of("(Bearer|bearer|N_A|mac|)"), expires in proptest::option::of(proptest::num::i64::ANY)) {
            let mut body = serde_json::Map::new();
            if let Some(a) = &access { body.insert("access_token".into(), a.clone().into()); }
            body.insert("issued_token_type".into(), "urn:x".into());
            if let Some(k) = &kind { body.insert("token_type".into(), k.clone().into()); }
            if let Some(e) = expires { body.insert("expires_in".into(), e.into()); }
            let result = read_token_response(&config(ClientAuth::None), &Answer::new(status, None, serde_json::Value::Object(body).to_string().into_bytes()));
            if let Ok(token) = result {
                proptest::prop_assert!((200..300).contains(&status));
                proptest::prop_assert!(token.lifetime <= identity_http::MAX_LIFETIME);
            }
        }
    }

    fn prop_status() -> impl proptest::strategy::Strategy<Value = u16> {
        proptest::prop_oneof![proptest::strategy::Just(200u16), 100u16..600]
    }
}
