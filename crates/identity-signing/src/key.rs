//! Keys: a private [`SigningKey`] that signs, and the [`PublicKey`] that checks it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use jsonwebtoken::DecodingKey;
use serde_json::{Value, json};

use crate::KeyError;

/// The signature algorithms keys may use: the two that JOSE libraries everywhere verify and
/// that have short keys and signatures.
///
/// ```
/// use identity_signing::Algorithm;
/// assert_eq!(Algorithm::EdDsa.jose_name(), "EdDSA");
/// assert_eq!("ES256".parse::<Algorithm>().unwrap(), Algorithm::Es256);
/// assert!("RS256".parse::<Algorithm>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 (`EdDSA`, RFC 8037).
    EdDsa,
    /// ECDSA on P-256 with SHA-256 (`ES256`, RFC 7518).
    Es256,
}

impl Algorithm {
    /// The name in a JWS header and a JWK's `alg`.
    pub const fn jose_name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    pub(crate) const fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = KeyError;

    fn from_str(name: &str) -> Result<Self, KeyError> {
        match name {
            "EdDSA" => Ok(Self::EdDsa),
            "ES256" => Ok(Self::Es256),
            other => Err(KeyError::Unsupported(format!(
                "the algorithm `{other}` (EdDSA or ES256)"
            ))),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jose_name())
    }
}

/// The private half, parsed once: signing does not decode the key again (jsonwebtoken's own
/// signer re-reads the PKCS#8 document on every signature, which costs more than signing).
enum Private {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    P256(Box<p256::ecdsa::SigningKey>),
}

/// A private key that signs, with its key id. `Debug` shows the id and algorithm only.
///
/// ```
/// use identity_signing::{Algorithm, SigningKey};
/// let key = SigningKey::generate(Algorithm::Es256, "2026-11")?;
/// assert_eq!(key.public_key().jwk()["crv"], "P-256");
/// assert!(!format!("{key:?}").contains("PRIVATE"));
/// # Ok::<(), identity_signing::KeyError>(())
/// ```
pub struct SigningKey {
    private: Private,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public.key_id)
            .field("algorithm", &self.public.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key in `pem`, known as `key_id`: a PKCS#8 `PRIVATE KEY` of Ed25519 or P-256 (as
    /// `openssl genpkey -algorithm ed25519` or `-algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    /// writes it), or a SEC1 `EC PRIVATE KEY` of P-256.
    ///
    /// ```
    /// let err = identity_signing::SigningKey::from_pem("not a key", "k1").unwrap_err();
    /// assert!(err.to_string().contains("PEM"));
    /// ```
    pub fn from_pem(pem: &str, key_id: impl Into<String>) -> Result<Self, KeyError> {
        let key_id = checked_key_id(key_id.into())?;
        let block = pem::parse(pem).map_err(|_| KeyError::NotPem)?;
        let private = match block.tag() {
            "PRIVATE KEY" => {
                if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_der(block.contents()) {
                    Private::Ed25519(Box::new(key))
                } else if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_der(block.contents()) {
                    Private::P256(Box::new(key))
                } else {
                    return Err(KeyError::Unsupported(
                        "a PKCS#8 key that is neither Ed25519 nor P-256".into(),
                    ));
                }
            }
            "EC PRIVATE KEY" => {
                let secret = p256::SecretKey::from_sec1_der(block.contents()).map_err(|_| {
                    KeyError::Unsupported("an EC PRIVATE KEY that is not on P-256".into())
                })?;
                Private::P256(Box::new(secret.into()))
            }
            other => {
                return Err(KeyError::Unsupported(format!(
                    "a PEM `{other}` block (a PRIVATE KEY is needed)"
                )));
            }
        };
        Ok(Self::of(private, key_id))
    }

    /// A fresh key of `algorithm` from the system's random source, known as `key_id`. What it
    /// signs is checked only where its public key is published: replicas must share one
    /// configured key.
    pub fn generate(algorithm: Algorithm, key_id: impl Into<String>) -> Result<Self, KeyError> {
        let key_id = checked_key_id(key_id.into())?;
        let mut seed = [0u8; 32];
        let private = loop {
            getrandom::fill(&mut seed).map_err(|_| KeyError::Random)?;
            match algorithm {
                Algorithm::EdDsa => {
                    break Private::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(&seed)));
                }
                // A scalar of zero or above the curve's order (about one in 2^32) is drawn again.
                Algorithm::Es256 => {
                    if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&seed) {
                        break Private::P256(Box::new(key));
                    }
                }
            }
        };
        seed.fill(0);
        Ok(Self::of(private, key_id))
    }

    fn of(private: Private, key_id: String) -> Self {
        let public = match &private {
            Private::Ed25519(key) => PublicKey::ed25519(key.verifying_key(), key_id),
            Private::P256(key) => PublicKey::p256(*key.verifying_key(), key_id),
        };
        Self { private, public }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.public.key_id
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm
    }

    /// The public half, to publish.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The signature of `message`: 64 bytes either way (ES256's is `r || s`, as JWS has it).
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        match &self.private {
            Private::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Private::P256(key) => {
                let signature: p256::ecdsa::Signature = signature_of(key, message);
                signature.to_bytes().to_vec()
            }
        }
    }
}

fn signature_of(key: &p256::ecdsa::SigningKey, message: &[u8]) -> p256::ecdsa::Signature {
    use p256::ecdsa::signature::Signer as _;
    key.sign(message)
}

/// A public key that checks signatures, with its key id; published as a JWK.
///
/// ```
/// use identity_signing::{Algorithm, PublicKey, SigningKey};
/// let key = SigningKey::generate(Algorithm::EdDsa, "k1")?;
/// let again = PublicKey::from_jwk(&key.public_key().jwk())?;
/// assert_eq!(again.key_id(), "k1");
/// assert!(PublicKey::from_jwk(&serde_json::json!({"kty":"RSA","kid":"k"})).is_err());
/// # Ok::<(), identity_signing::KeyError>(())
/// ```
#[derive(Clone)]
pub struct PublicKey {
    key_id: String,
    algorithm: Algorithm,
    jwk: Value,
    pub(crate) decoding: DecodingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.jwk == other.jwk
    }
}

impl PublicKey {
    fn ed25519(key: ed25519_dalek::VerifyingKey, key_id: String) -> Self {
        let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
        let decoding = DecodingKey::from_ed_der(key.as_bytes());
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": key_id, "x": x});
        Self {
            key_id,
            algorithm: Algorithm::EdDsa,
            jwk,
            decoding,
        }
    }

    fn p256(key: p256::ecdsa::VerifyingKey, key_id: String) -> Self {
        let point = key.to_encoded_point(false);
        let decoding = DecodingKey::from_ec_der(point.as_bytes());
        // An uncompressed point always has both coordinates.
        let coordinate =
            |c: Option<&p256::FieldBytes>| c.map(|c| URL_SAFE_NO_PAD.encode(c)).unwrap_or_default();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": key_id,
            "x": coordinate(point.x()), "y": coordinate(point.y()),
        });
        Self {
            key_id,
            algorithm: Algorithm::Es256,
            jwk,
            decoding,
        }
    }

    /// The key in `pem`, known as `key_id`: a `PUBLIC KEY` (SubjectPublicKeyInfo) of Ed25519
    /// or P-256, as `openssl pkey -pubout` writes it; or the private key it belongs to.
    ///
    /// ```
    /// assert!(identity_signing::PublicKey::from_pem("", "k").is_err());
    /// ```
    pub fn from_pem(pem: &str, key_id: impl Into<String>) -> Result<Self, KeyError> {
        let key_id = checked_key_id(key_id.into())?;
        let block = pem::parse(pem).map_err(|_| KeyError::NotPem)?;
        if block.tag() != "PUBLIC KEY" {
            return SigningKey::from_pem(pem, key_id).map(|key| key.public);
        }
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(block.contents()) {
            return Ok(Self::ed25519(key, key_id));
        }
        p256::ecdsa::VerifyingKey::from_public_key_der(block.contents())
            .map(|key| Self::p256(key, key_id))
            .map_err(|_| {
                KeyError::Unsupported("a PUBLIC KEY that is neither Ed25519 nor P-256".into())
            })
    }

    /// The key of a JWK (`OKP`/`Ed25519` or `EC`/`P-256`, with a `kid`).
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let text = |field: &str| jwk.get(field).and_then(Value::as_str);
        let key_id = checked_key_id(text("kid").unwrap_or_default().to_owned())?;
        let bytes = |field: &str| {
            text(field)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or_else(|| KeyError::BadJwk(format!("`{field}` is not base64url")))
        };
        match (text("kty"), text("crv")) {
            (Some("OKP"), Some("Ed25519")) => {
                let x: [u8; 32] = bytes("x")?
                    .try_into()
                    .map_err(|_| KeyError::BadJwk("`x` is not 32 bytes".into()))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| KeyError::BadJwk("`x` is not an Ed25519 point".into()))?;
                Ok(Self::ed25519(key, key_id))
            }
            (Some("EC"), Some("P-256")) => {
                let mut sec1 = vec![4u8];
                sec1.extend(bytes("x")?);
                sec1.extend(bytes("y")?);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| KeyError::BadJwk("`x`, `y` are not a P-256 point".into()))?;
                Ok(Self::p256(key, key_id))
            }
            (kty, crv) => Err(KeyError::BadJwk(format!(
                "kty `{}` crv `{}` (OKP Ed25519 or EC P-256)",
                kty.unwrap_or(""),
                crv.unwrap_or("")
            ))),
        }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key as a JWK (RFC 7517), with `kid`, `alg` and `use: sig`.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }
}

fn checked_key_id(key_id: String) -> Result<String, KeyError> {
    if key_id.is_empty() || key_id.len() > 128 || key_id.chars().any(char::is_control) {
        return Err(KeyError::BadKeyId);
    }
    Ok(key_id)
}
