//! The authorization code flow's client side: PKCE, the authorize URL, and the checks of the
//! callback before any code is exchanged.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::{Error, Secret};
use identity_http::{AuthorizationServerMetadata, OAuthErrorCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::BACKEND;

/// `count` bytes from the operating system's random source, base64url without padding.
pub(crate) fn random_token(count: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; count];
    getrandom::fill(&mut bytes)
        .map_err(|_| Error::unavailable(BACKEND, "the system's random source failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A PKCE pair (RFC 7636), `S256` only: the verifier stays with the client, the challenge goes in
/// the authorize URL.
///
/// ```
/// // RFC 7636, appendix B.
/// let pkce = identity_oauth::Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")?;
/// assert_eq!(pkce.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Pkce {
    verifier: Secret,
    challenge: String,
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Pkce {
    /// A fresh pair: 32 random bytes as the verifier (43 characters).
    ///
    /// ```
    /// let pkce = identity_oauth::Pkce::generate()?;
    /// assert_eq!(pkce.verifier().expose_secret().len(), 43);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn generate() -> Result<Self, Error> {
        Self::from_verifier(&random_token(32)?)
    }

    /// The pair of a given verifier (43 to 128 unreserved characters, RFC 7636 §4.1).
    ///
    /// ```
    /// assert!(identity_oauth::Pkce::from_verifier("too-short").is_err());
    /// ```
    pub fn from_verifier(verifier: &str) -> Result<Self, Error> {
        let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        if !(43..=128).contains(&verifier.len()) || !verifier.chars().all(unreserved) {
            return Err(Error::InvalidArgument {
                argument: "code verifier",
                problem: "must be 43 to 128 unreserved characters".into(),
            });
        }
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Ok(Self {
            verifier: Secret::new(verifier),
            challenge,
        })
    }

    /// The verifier, sent with the code.
    ///
    /// ```
    /// # let pkce = identity_oauth::Pkce::generate()?;
    /// let verifier = pkce.verifier();
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn verifier(&self) -> &Secret {
        &self.verifier
    }

    /// The `S256` challenge, sent in the authorize URL.
    ///
    /// ```
    /// # let pkce = identity_oauth::Pkce::generate()?;
    /// assert_eq!(pkce.challenge().len(), 43);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

/// What a client must keep between sending the user to the authorize URL and the callback. It
/// holds the PKCE verifier: keep it server-side (or sealed), never in the browser in clear.
#[derive(Clone)]
pub struct PendingAuthorization {
    /// The issuer the flow was started with (RFC 9207).
    pub issuer: String,
    /// The `state` sent.
    pub state: Secret,
    /// The `nonce` sent (OpenID Connect).
    pub nonce: Secret,
    /// The PKCE pair.
    pub pkce: Pkce,
    /// The exact `redirect_uri` sent, to send again with the code.
    pub redirect_uri: String,
    /// The RFC 8707 resources asked for.
    pub resources: Vec<String>,
    /// True when `openid` was asked for: the code's answer must then carry an ID token that
    /// verifies, `nonce` included.
    pub openid: bool,
    /// True when the server said it puts `iss` in its authorization responses (RFC 9207): a
    /// callback without it is then refused.
    pub iss_required: bool,
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("issuer", &self.issuer)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Builds an authorize URL (RFC 6749 §4.1.1 with PKCE and RFC 8707), and what to keep for the
/// callback.
///
/// ```
/// use identity_http::{AuthorizationServerMetadata, OutboundPolicy};
/// use identity_oauth::AuthorizationRequest;
///
/// let server = AuthorizationServerMetadata::from_json(serde_json::json!({
///     "issuer": "https://as.example.com",
///     "authorization_endpoint": "https://as.example.com/authorize",
///     "token_endpoint": "https://as.example.com/token",
///     "code_challenge_methods_supported": ["S256"]}), "https://as.example.com", &OutboundPolicy::default())?;
/// let (url, pending) = AuthorizationRequest::new("agent", "https://app.example.com/callback")
///     .scopes(["openid", "crm:read"])
///     .login_hint("alice@example.com")
///     .resource("https://crm.example.com")
///     .build(&server)?;
/// assert!(url.as_str().contains("code_challenge_method=S256"));
/// assert!(url.as_str().contains(pending.state.expose_secret()));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until `build` is called"]
pub struct AuthorizationRequest {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    prompt: Option<String>,
    login_hint: Option<String>,
    resources: Vec<String>,
    extra: Vec<(String, String)>,
}

impl AuthorizationRequest {
    /// A request for `client_id`, coming back to `redirect_uri`.
    ///
    /// ```
    /// let request = identity_oauth::AuthorizationRequest::new("agent", "https://app.example.com/cb");
    /// ```
    pub fn new(client_id: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
            prompt: None,
            login_hint: None,
            resources: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The scopes asked for.
    ///
    /// ```
    /// let r = identity_oauth::AuthorizationRequest::new("a", "https://x/cb").scopes(["openid"]);
    /// ```
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `prompt` (`consent`, `login`, `none`).
    ///
    /// ```
    /// let r = identity_oauth::AuthorizationRequest::new("a", "https://x/cb").prompt("consent");
    /// ```
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// `login_hint`.
    ///
    /// ```
    /// let r = identity_oauth::AuthorizationRequest::new("a", "https://x/cb").login_hint("alice");
    /// ```
    pub fn login_hint(mut self, hint: impl Into<String>) -> Self {
        self.login_hint = Some(hint.into());
        self
    }

    /// An RFC 8707 resource (repeatable); the same resources go with the code and every refresh.
    ///
    /// ```
    /// let r = identity_oauth::AuthorizationRequest::new("a", "https://x/cb").resource("https://api.example.com");
    /// ```
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// Another parameter (`access_type=offline` for Google, say). The flow's own parameters
    /// cannot be overridden this way.
    ///
    /// ```
    /// let r = identity_oauth::AuthorizationRequest::new("a", "https://x/cb").extra("access_type", "offline");
    /// ```
    pub fn extra(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// The authorize URL and what to keep. Refused when the server has no authorization
    /// endpoint or does not list `S256` among its PKCE methods (a server that does not say it
    /// checks PKCE may not).
    ///
    /// ```
    /// # use identity_http::{AuthorizationServerMetadata, OutboundPolicy};
    /// let server = AuthorizationServerMetadata::from_json(serde_json::json!({
    ///     "issuer": "https://as.example.com", "authorization_endpoint": "https://as.example.com/authorize"}),
    ///     "https://as.example.com", &OutboundPolicy::default())?;
    /// let err = identity_oauth::AuthorizationRequest::new("a", "https://x/cb").build(&server).unwrap_err();
    /// assert!(err.to_string().contains("S256"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn build(
        self,
        server: &AuthorizationServerMetadata,
    ) -> Result<(Url, PendingAuthorization), Error> {
        let endpoint = server
            .authorization_endpoint
            .clone()
            .ok_or_else(|| Error::Protocol {
                backend: BACKEND,
                code: "invalid_metadata".into(),
                description: Some(format!("`{}` has no authorization_endpoint", server.issuer)),
            })?;
        if !server
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
        {
            return Err(Error::Protocol {
                backend: BACKEND,
                code: "pkce_not_supported".into(),
                description: Some(format!(
                    "`{}` does not list S256 in code_challenge_methods_supported",
                    server.issuer
                )),
            });
        }
        let pkce = Pkce::generate()?;
        let state = Secret::new(random_token(24)?);
        let nonce = Secret::new(random_token(24)?);
        let openid = self.scopes.iter().any(|s| s == "openid");
        let mut url = endpoint;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("state", state.expose_secret());
            // A nonce belongs to OpenID Connect: a plain OAuth request (an MCP server's
            // scopes) that carries one is refused by servers that check (oidc-provider).
            if openid {
                query.append_pair("nonce", nonce.expose_secret());
            }
            query
                .append_pair("code_challenge", pkce.challenge())
                .append_pair("code_challenge_method", "S256");
            if !self.scopes.is_empty() {
                query.append_pair("scope", &self.scopes.join(" "));
            }
            if let Some(prompt) = &self.prompt {
                query.append_pair("prompt", prompt);
            }
            if let Some(hint) = &self.login_hint {
                query.append_pair("login_hint", hint);
            }
            for resource in &self.resources {
                query.append_pair("resource", resource);
            }
            for (name, value) in &self.extra {
                if !RESERVED.contains(&name.as_str()) {
                    query.append_pair(name, value);
                }
            }
        }
        Ok((
            url,
            PendingAuthorization {
                issuer: server.issuer.clone(),
                state,
                nonce,
                pkce,
                redirect_uri: self.redirect_uri,
                resources: self.resources,
                openid,
                iss_required: server.authorization_response_iss_parameter_supported,
            },
        ))
    }
}

/// Parameters the flow sets itself.
const RESERVED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "resource",
];

/// The callback's query, checked: the code it carries, for exchange.
///
/// ```
/// # use identity_oauth::{Pkce, PendingAuthorization, check_callback};
/// # use identity_core::Secret;
/// let pending = PendingAuthorization {
///     issuer: "https://as.example.com".into(), state: Secret::new("s1"), nonce: Secret::new("n"),
///     pkce: Pkce::generate()?, redirect_uri: "https://app/cb".into(), resources: vec![],
///     openid: false, iss_required: false,
/// };
/// let ok = check_callback(&pending, &[("code", "c1"), ("state", "s1"), ("iss", "https://as.example.com")])?;
/// assert_eq!(ok.expose_secret(), "c1");
/// assert!(check_callback(&pending, &[("code", "c1"), ("state", "forged")]).is_err());
/// # Ok::<(), identity_core::Error>(())
/// ```
pub fn check_callback(
    pending: &PendingAuthorization,
    query: &[(&str, &str)],
) -> Result<Secret, Error> {
    let get = |name: &str| query.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let refused = |code: &str, problem: &str| Error::Protocol {
        backend: BACKEND,
        code: code.into(),
        description: Some(problem.into()),
    };
    // The state is compared first: an answer to a flow this client did not start says nothing.
    let state = get("state").unwrap_or_default();
    if !bool::from(
        state
            .as_bytes()
            .ct_eq(pending.state.expose_secret().as_bytes()),
    ) {
        return Err(refused(
            "invalid_state",
            "the callback's state is not the flow's",
        ));
    }
    // RFC 9207: when the server names itself, it must be the server the flow was started with;
    // a server that said it always names itself must have done so (§2.4).
    match get("iss") {
        Some(iss) if iss != pending.issuer => {
            return Err(refused(
                "invalid_issuer",
                "the callback's iss is not the flow's issuer (a mix-up attack?)",
            ));
        }
        None if pending.iss_required => {
            return Err(refused(
                "invalid_issuer",
                "the callback has no iss, which this server always sends (a mix-up attack?)",
            ));
        }
        _ => {}
    }
    if let Some(error) = get("error") {
        return Err(Error::Protocol {
            backend: BACKEND,
            code: OAuthErrorCode::parse(error).as_str().to_owned(),
            description: Some("the authorization server refused the authorization".into()),
        });
    }
    match get("code") {
        Some(code) if !code.is_empty() => Ok(Secret::new(code)),
        _ => Err(refused("invalid_request", "the callback carries no code")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingAuthorization {
        PendingAuthorization {
            issuer: "https://as.example.com".into(),
            state: Secret::new("state-1"),
            nonce: Secret::new("nonce-1"),
            pkce: Pkce::generate().unwrap(),
            redirect_uri: "https://app.example.com/cb".into(),
            resources: Vec::new(),
            openid: false,
            iss_required: false,
        }
    }

    fn code_of(err: Error) -> String {
        match err {
            Error::Protocol { code, .. } => code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn callbacks_are_checked_state_first_then_issuer() {
        let p = pending();
        assert_eq!(
            code_of(check_callback(&p, &[("code", "c"), ("state", "other")]).unwrap_err()),
            "invalid_state"
        );
        assert_eq!(
            code_of(check_callback(&p, &[("code", "c")]).unwrap_err()),
            "invalid_state"
        );
        assert_eq!(
            code_of(
                check_callback(
                    &p,
                    &[
                        ("code", "c"),
                        ("state", "state-1"),
                        ("iss", "https://evil.example.com")
                    ]
                )
                .unwrap_err()
            ),
            "invalid_issuer"
        );
        assert_eq!(
            code_of(
                check_callback(&p, &[("error", "access_denied"), ("state", "state-1")])
                    .unwrap_err()
            ),
            "access_denied"
        );
        assert_eq!(
            code_of(check_callback(&p, &[("state", "state-1")]).unwrap_err()),
            "invalid_request"
        );
        assert!(check_callback(&p, &[("code", "c"), ("state", "state-1")]).is_ok());
        // A server that advertises RFC 9207 must name itself.
        let strict = PendingAuthorization {
            iss_required: true,
            ..pending()
        };
        assert_eq!(
            code_of(check_callback(&strict, &[("code", "c"), ("state", "state-1")]).unwrap_err()),
            "invalid_issuer"
        );
        assert!(
            check_callback(
                &strict,
                &[
                    ("code", "c"),
                    ("state", "state-1"),
                    ("iss", "https://as.example.com")
                ]
            )
            .is_ok()
        );
    }

    #[test]
    fn a_nonce_goes_only_with_openid() {
        let server = identity_http::AuthorizationServerMetadata::from_json(
            serde_json::json!({"issuer": "https://as.example.com",
                "authorization_endpoint": "https://as.example.com/authorize",
                "code_challenge_methods_supported": ["S256"]}),
            "https://as.example.com",
            &identity_http::OutboundPolicy::default(),
        )
        .unwrap();
        let has_nonce = |scopes: &[&str]| {
            let (url, pending) = AuthorizationRequest::new("a", "https://x/cb")
                .scopes(scopes.iter().copied())
                .build(&server)
                .unwrap();
            let sent = url.query_pairs().any(|(k, _)| k == "nonce");
            assert_eq!(sent, pending.openid);
            sent
        };
        assert!(has_nonce(&["openid", "email"]));
        // An MCP server's scopes: plain OAuth, no nonce (oidc-provider refuses one).
        assert!(!has_nonce(&["crm:read", "offline_access"]));
    }

    #[test]
    fn verifiers_are_random_and_well_formed() {
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        assert_ne!(a.verifier().expose_secret(), b.verifier().expose_secret());
        assert!(!format!("{a:?}").contains(a.verifier().expose_secret()));
        assert!(Pkce::from_verifier(&"a".repeat(129)).is_err());
        assert!(Pkce::from_verifier(&format!("{}+", "a".repeat(42))).is_err());
    }
}
