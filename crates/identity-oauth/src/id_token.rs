//! ID token verification (OpenID Connect Core §3.1.3.7): the signature with the issuer's keys,
//! then `iss`, `aud`, `exp` and the flow's `nonce`.

use std::fmt;

use identity_core::{Error, Secret};
use identity_http::HttpClient;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;
use url::Url;

use crate::BACKEND;

/// Algorithms an ID token may be signed with: asymmetric only (an `HS256` token would be signed
/// with the client secret, and `none` is no signature).
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn refused(problem: &str) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: "invalid_id_token".into(),
        description: Some(format!("the ID token {problem}")),
    }
}

/// An issuer's signing keys, read from its `jwks_uri` at first use and again when a token names
/// a key id they lack (the issuer rotated its keys).
pub(crate) struct IssuerKeys {
    jwks_uri: Option<Url>,
    keys: RwLock<Option<JwkSet>>,
}

impl fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("jwks_uri", &self.jwks_uri.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

impl IssuerKeys {
    pub(crate) fn new(jwks_uri: Option<Url>) -> Self {
        Self {
            jwks_uri,
            keys: RwLock::new(None),
        }
    }

    async fn fetch(&self, http: &HttpClient) -> Result<JwkSet, Error> {
        let uri = self
            .jwks_uri
            .as_ref()
            .ok_or_else(|| refused("cannot be verified: the issuer publishes no jwks_uri"))?;
        let answer = http.get_json(uri, "jwks").await?;
        if answer.status != 200 {
            return Err(Error::unavailable(
                BACKEND,
                format!("jwks: answered {}", answer.status),
            ));
        }
        serde_json::from_slice(&answer.body).map_err(|_| Error::Protocol {
            backend: BACKEND,
            code: "invalid_response".into(),
            description: Some("jwks: not a JSON Web Key Set".into()),
        })
    }

    /// The key of `kid` (or the only key, when the token names none), fetching the set once
    /// more when it is not there.
    async fn key(&self, http: &HttpClient, kid: Option<&str>) -> Result<DecodingKey, Error> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        if let Some(jwk) = self.keys.read().await.as_ref().and_then(pick) {
            return DecodingKey::from_jwk(&jwk).map_err(|_| refused("names an unusable key"));
        }
        let fresh = self.fetch(http).await?;
        let jwk = pick(&fresh);
        *self.keys.write().await = Some(fresh);
        let jwk = jwk.ok_or_else(|| refused("names a key the issuer does not publish"))?;
        DecodingKey::from_jwk(&jwk).map_err(|_| refused("names an unusable key"))
    }

    /// Verifies `id_token`: signed by one of the issuer's keys with an asymmetric algorithm,
    /// `iss` equal to `issuer`, `aud` holding `client_id`, not expired (60 s of leeway), and
    /// `nonce` equal to the flow's (compared in constant time).
    pub(crate) async fn verify(
        &self,
        http: &HttpClient,
        id_token: &Secret,
        issuer: &str,
        client_id: &str,
        nonce: &Secret,
    ) -> Result<Map<String, Value>, Error> {
        let token = id_token.expose_secret();
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("is not a JWT"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(refused("is not signed with an asymmetric algorithm"));
        }
        let key = self.key(http, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
        validation.leeway = 60;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                refused(match err.kind() {
                    ErrorKind::InvalidSignature => "has a signature that does not verify",
                    ErrorKind::ExpiredSignature => "has expired",
                    ErrorKind::InvalidIssuer => "names another issuer",
                    ErrorKind::InvalidAudience => "is for another client",
                    ErrorKind::MissingRequiredClaim(_) => "lacks a required claim",
                    _ => "does not verify",
                })
            })?
            .claims;
        let found = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !bool::from(found.as_bytes().ct_eq(nonce.expose_secret().as_bytes())) {
            return Err(refused("carries another nonce than the flow's"));
        }
        Ok(claims)
    }
}
