//! How a client authenticates at a token, revocation or introspection endpoint.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use identity_core::{ConfigError, Error, OffsetDateTime, Secret};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use url::Url;
use url::form_urlencoded::byte_serialize;

use crate::BACKEND;
use crate::oauth::Form;

/// How the client authenticates (RFC 6749 §2.3, RFC 7523 §2.2; the names of RFC 7591's
/// `token_endpoint_auth_method`).
///
/// ```
/// use identity_http::ClientAuth;
/// assert_eq!(ClientAuth::default(), ClientAuth::ClientSecretBasic);
/// assert_eq!(ClientAuth::parse("private_key_jwt"), Some(ClientAuth::PrivateKeyJwt));
/// assert_eq!(ClientAuth::ClientSecretPost.as_str(), "client_secret_post");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the request body.
    ClientSecretPost,
    /// A public client: `client_id` in the body, no secret.
    None,
    /// A JWT signed with the client's private key (RFC 7523), for clients without a secret.
    PrivateKeyJwt,
}

impl ClientAuth {
    /// The method named as RFC 7591 names it.
    ///
    /// ```
    /// assert!(identity_http::ClientAuth::parse("tls_client_auth").is_none());
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "none" => Some(Self::None),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }

    /// The method's RFC 7591 name.
    ///
    /// ```
    /// assert_eq!(identity_http::ClientAuth::None.as_str(), "none");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// Read as its RFC 7591 name (`"client_secret_basic"`, `"client_secret_post"`, `"none"`,
/// `"private_key_jwt"`).
///
/// ```
/// let auth: identity_http::ClientAuth = serde_json::from_str(r#""private_key_jwt""#)?;
/// assert_eq!(auth, identity_http::ClientAuth::PrivateKeyJwt);
/// assert!(serde_json::from_str::<identity_http::ClientAuth>(r#""tls_client_auth""#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> serde::Deserialize<'de> for ClientAuth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&name),
                &"client_secret_basic, client_secret_post, none or private_key_jwt",
            )
        })
    }
}

/// A private key that signs client assertions (RFC 7523): `ES256` (P-256), `EdDSA` (Ed25519) or
/// `RS256`, from PKCS#8 PEM, with the key id the server knows it by. `Debug` shows the
/// algorithm and key id only.
///
/// ```
/// let err = identity_http::PrivateKey::from_pem(b"not a key", "ES256", None).unwrap_err();
/// assert!(err.to_string().contains("private key"));
/// ```
#[derive(Clone)]
pub struct PrivateKey {
    key: EncodingKey,
    algorithm: Algorithm,
    key_id: Option<String>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// The key in `pem`, for `algorithm` (`ES256`, `EdDSA` or `RS256`).
    ///
    /// ```
    /// assert!(identity_http::PrivateKey::from_pem(b"", "HS256", None).is_err());
    /// ```
    pub fn from_pem(pem: &[u8], algorithm: &str, key_id: Option<String>) -> Result<Self, Error> {
        let invalid = |problem: &str| -> Error {
            ConfigError::new("client private key", None, problem.to_owned()).into()
        };
        let (algorithm, key) = match algorithm {
            "ES256" => (Algorithm::ES256, EncodingKey::from_ec_pem(pem)),
            "EdDSA" => (Algorithm::EdDSA, EncodingKey::from_ed_pem(pem)),
            "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_pem(pem)),
            _ => return Err(invalid("the algorithm must be ES256, EdDSA or RS256")),
        };
        let key = key.map_err(|_| invalid("is not a PKCS#8 PEM private key of that algorithm"))?;
        Ok(Self {
            key,
            algorithm,
            key_id,
        })
    }

    /// A client assertion for `client_id` to present at `audience` (the endpoint), valid for
    /// 60 seconds, with a random `jti` so that it is used once.
    fn assertion(&self, client_id: &str, audience: &str) -> Result<Secret, Error> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti)
            .map_err(|_| Error::unavailable(BACKEND, "the system's random source failed"))?;
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "exp": now + 60,
        });
        let mut header = Header::new(self.algorithm);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(Secret::new)
            .map_err(|_| Error::unavailable(BACKEND, "the client assertion could not be signed"))
    }
}

/// Who the client is and how it proves it: the client id, the method, and the secret or key
/// the method needs. `Debug` shows the id and the method only.
///
/// ```
/// use identity_core::Secret;
/// let client = identity_http::ClientCredentials::new("agent", identity_http::ClientAuth::ClientSecretBasic,
///     Some(Secret::new("s3cret")), None)?;
/// assert!(!format!("{client:?}").contains("s3cret"));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    client_id: String,
    method: ClientAuth,
    secret: Option<Secret>,
    key: Option<Arc<PrivateKey>>,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// A client with `method`, checked: a secret for the secret methods (and none for a public
    /// client), a key for `private_key_jwt`.
    ///
    /// ```
    /// use identity_http::{ClientAuth, ClientCredentials};
    /// assert!(ClientCredentials::new("agent", ClientAuth::ClientSecretPost, None, None).is_err());
    /// assert!(ClientCredentials::new("agent", ClientAuth::None, None, None).is_ok());
    /// ```
    pub fn new(
        client_id: impl Into<String>,
        method: ClientAuth,
        secret: Option<Secret>,
        key: Option<PrivateKey>,
    ) -> Result<Self, Error> {
        let client_id = client_id.into();
        let invalid = |field: &str, problem: &str| -> Error {
            ConfigError::new(format!("client `{client_id}`"), Some(field), problem).into()
        };
        if client_id.trim().is_empty() {
            return Err(invalid("client_id", "is empty"));
        }
        match (method, &secret, &key) {
            (ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost, None, _) => {
                return Err(invalid("client_secret", "is missing for a secret method"));
            }
            (ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost, Some(s), _)
                if s.expose_secret().is_empty() =>
            {
                return Err(invalid("client_secret", "is empty"));
            }
            (ClientAuth::None | ClientAuth::PrivateKeyJwt, Some(_), _) => {
                return Err(invalid(
                    "client_secret",
                    "is set for a method that sends no secret",
                ));
            }
            (ClientAuth::PrivateKeyJwt, _, None) => {
                return Err(invalid("private_key", "is missing for private_key_jwt"));
            }
            _ => {}
        }
        Ok(Self {
            client_id,
            method,
            secret,
            key: key.map(Arc::new),
        })
    }

    /// A confidential client with a secret, `client_secret_basic`.
    ///
    /// ```
    /// let client = identity_http::ClientCredentials::basic("agent", identity_core::Secret::new("s"));
    /// assert_eq!(client.method(), identity_http::ClientAuth::ClientSecretBasic);
    /// ```
    pub fn basic(client_id: impl Into<String>, secret: Secret) -> Self {
        Self {
            client_id: client_id.into(),
            method: ClientAuth::ClientSecretBasic,
            secret: Some(secret),
            key: None,
        }
    }

    /// A public client (no secret).
    ///
    /// ```
    /// let client = identity_http::ClientCredentials::public("cli-app");
    /// assert_eq!(client.client_id(), "cli-app");
    /// ```
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            method: ClientAuth::None,
            secret: None,
            key: None,
        }
    }

    /// The client id.
    ///
    /// ```
    /// assert_eq!(identity_http::ClientCredentials::public("a").client_id(), "a");
    /// ```
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The method.
    ///
    /// ```
    /// assert_eq!(identity_http::ClientCredentials::public("a").method(), identity_http::ClientAuth::None);
    /// ```
    pub fn method(&self) -> ClientAuth {
        self.method
    }

    /// The secret, for a provider's own endpoints that authenticate the client (GitHub's token
    /// API).
    ///
    /// ```
    /// assert!(identity_http::ClientCredentials::public("a").secret().is_none());
    /// ```
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// Adds the client's authentication to a request for `endpoint`: an `Authorization` header
    /// (returned) or form parameters.
    pub(crate) fn authenticate(
        &self,
        form: &mut Form,
        endpoint: &Url,
    ) -> Result<Option<Secret>, Error> {
        let secret = || self.secret.as_ref().map_or("", Secret::expose_secret);
        match self.method {
            ClientAuth::ClientSecretBasic => {
                // RFC 6749 §2.3.1: id and secret are form-encoded before they are joined.
                let pair = format!("{}:{}", form_encode(&self.client_id), form_encode(secret()));
                return Ok(Some(Secret::new(format!(
                    "Basic {}",
                    STANDARD.encode(pair)
                ))));
            }
            ClientAuth::ClientSecretPost => {
                form.push("client_id", &self.client_id);
                form.push_secret("client_secret", secret());
            }
            ClientAuth::None => {
                form.push("client_id", &self.client_id);
            }
            ClientAuth::PrivateKeyJwt => {
                let key = self.key.as_ref().ok_or_else(|| {
                    Error::from(ConfigError::new(
                        format!("client `{}`", self.client_id),
                        Some("private_key"),
                        "is missing for private_key_jwt",
                    ))
                })?;
                let assertion = key.assertion(&self.client_id, endpoint.as_str())?;
                form.push("client_id", &self.client_id);
                form.push(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.push_secret("client_assertion", assertion.expose_secret());
            }
        }
        Ok(None)
    }
}

fn form_encode(text: &str) -> String {
    byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Url {
        Url::parse("https://as.example.com/token").unwrap()
    }

    #[test]
    fn basic_authentication_form_encodes_id_and_secret_first() {
        let client = ClientCredentials::basic("agent:one", Secret::new("p@ss:w%rd"));
        let mut form = Form::default();
        let header = client
            .authenticate(&mut form, &endpoint())
            .unwrap()
            .unwrap();
        let decoded = STANDARD
            .decode(header.expose_secret().strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "agent%3Aone:p%40ss%3Aw%25rd"
        );
        assert!(form.is_empty());
    }

    #[test]
    fn post_and_public_clients_put_their_id_in_the_body() {
        let post = ClientCredentials::new(
            "agent",
            ClientAuth::ClientSecretPost,
            Some(Secret::new("s")),
            None,
        )
        .unwrap();
        let mut form = Form::default();
        assert!(post.authenticate(&mut form, &endpoint()).unwrap().is_none());
        assert_eq!(form.get("client_id"), Some("agent"));
        assert_eq!(form.get("client_secret"), Some("s"));
        let mut form = Form::default();
        ClientCredentials::public("cli")
            .authenticate(&mut form, &endpoint())
            .unwrap();
        assert_eq!(form.get("client_id"), Some("cli"));
        assert_eq!(form.get("client_secret"), None);
    }

    #[test]
    fn private_key_jwt_sends_a_signed_assertion_for_the_endpoint() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let der = signing.to_pkcs8_der().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der.as_bytes())
        );
        let key = PrivateKey::from_pem(pem.as_bytes(), "EdDSA", Some("k1".into())).unwrap();
        assert!(!format!("{key:?}").contains("BEGIN"));
        let client =
            ClientCredentials::new("cimd-agent", ClientAuth::PrivateKeyJwt, None, Some(key))
                .unwrap();
        let mut form = Form::default();
        assert!(
            client
                .authenticate(&mut form, &endpoint())
                .unwrap()
                .is_none()
        );
        assert_eq!(form.get("client_id"), Some("cimd-agent"));
        assert_eq!(
            form.get("client_assertion_type"),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        let assertion = form.get("client_assertion").unwrap();
        let header = jsonwebtoken::decode_header(assertion).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let public = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let decoding = jsonwebtoken::DecodingKey::from_ed_components(&public).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[endpoint().as_str()]);
        validation.set_issuer(&["cimd-agent"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(assertion, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "cimd-agent");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
        // Each assertion is used once: a second one has another `jti`.
        let mut again = Form::default();
        client.authenticate(&mut again, &endpoint()).unwrap();
        let second = again.get("client_assertion").unwrap();
        let jti = |token: &str| {
            jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
                .unwrap()
                .claims["jti"]
                .clone()
        };
        assert_ne!(jti(assertion), jti(second));
    }

    #[test]
    fn methods_without_what_they_need_are_refused_naming_the_field() {
        for (method, secret, field) in [
            (ClientAuth::ClientSecretBasic, None, "client_secret"),
            (ClientAuth::ClientSecretPost, Some(""), "client_secret"),
            (ClientAuth::None, Some("s"), "client_secret"),
            (ClientAuth::PrivateKeyJwt, None, "private_key"),
        ] {
            let err = ClientCredentials::new("agent", method, secret.map(Secret::new), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{method:?}: {err}");
        }
    }
}
