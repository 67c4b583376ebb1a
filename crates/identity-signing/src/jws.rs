//! [`KeySet`]: published keys, checking compact JWS statements.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{KeyError, PublicKey};

/// What a statement must be to be accepted, besides signed by a known key: its issuer, its
/// type, and (when set) its audience. `exp` is required and checked with no leeway unless one
/// is given.
///
/// ```
/// let expect = identity_signing::Expectations::new("agent-identity", "example+jwt")
///     .with_audience("payments").with_leeway(5);
/// assert_eq!(expect.issuer(), "agent-identity");
/// ```
#[derive(Debug, Clone)]
pub struct Expectations {
    issuer: String,
    typ: String,
    audience: Option<String>,
    leeway_secs: u64,
}

impl Expectations {
    /// Statements of `issuer`, whose header says `typ`.
    pub fn new(issuer: impl Into<String>, typ: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            typ: typ.into(),
            audience: None,
            leeway_secs: 0,
        }
    }

    /// Statements for `audience` (their `aud`) only.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Allows `seconds` of clock skew on `exp` and `nbf`.
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway_secs = seconds;
        self
    }

    /// The issuer expected.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// Why a statement is refused. None of them carries any part of the statement.
///
/// ```
/// use identity_signing::VerifyError;
/// assert_eq!(VerifyError::Expired.to_string(), "the statement has expired");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not three base64url parts with a JSON header and payload of the expected shape.
    #[error("the statement is not a compact JWS that can be read")]
    Malformed,
    /// The header names no key id, or one that is not published.
    #[error("the statement is signed with a key that is not published (kid `{kid}`)")]
    UnknownKey {
        /// The key id in the header (empty when there is none).
        kid: String,
    },
    /// The header names another algorithm than the key's.
    #[error("the statement's algorithm is not its key's")]
    AlgorithmMismatch,
    /// The header's `typ` is not the one expected.
    #[error("the statement is of another type")]
    WrongType,
    /// The signature does not match: the header or the payload was changed, or another key
    /// signed it.
    #[error("the signature does not match")]
    BadSignature,
    /// Past its `exp`.
    #[error("the statement has expired")]
    Expired,
    /// Before its `nbf`.
    #[error("the statement is not valid yet")]
    NotYetValid,
    /// Another issuer made it.
    #[error("another issuer made the statement")]
    WrongIssuer,
    /// It is meant for another audience.
    #[error("the statement is meant for another audience")]
    WrongAudience,
    /// A claim the statement needs is missing (`exp`, `iss`, or one of the payload's type).
    #[error("the statement lacks a claim it needs")]
    MissingClaim,
}

/// Published public keys, by key id: checks statements and serves as a JWKS.
///
/// ```
/// use identity_signing::{Algorithm, KeySet, SigningKey};
/// let key = SigningKey::generate(Algorithm::EdDsa, "k1")?;
/// let set = KeySet::from_jwks(&serde_json::json!({"keys": [key.public_key().jwk()]}))?;
/// assert_eq!(set.key_ids().collect::<Vec<_>>(), ["k1"]);
/// assert!(KeySet::from_jwks(&serde_json::json!({"keys": 1})).is_err());
/// # Ok::<(), identity_signing::KeyError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<PublicKey>,
}

impl KeySet {
    /// A set of `keys`; a later key of an id already present replaces it.
    pub fn from_keys(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        let mut set = Self::default();
        for key in keys {
            set.insert(key);
        }
        set
    }

    /// The keys of a JWKS document (`{"keys": [...]}`). A key that is not Ed25519 or P-256, or
    /// a key id given twice, is an error: a set must not depend on which of two keys wins.
    pub fn from_jwks(jwks: &Value) -> Result<Self, KeyError> {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::BadJwks("it has no `keys` array".into()))?;
        let mut set = Self::default();
        for (index, jwk) in keys.iter().enumerate() {
            let key = PublicKey::from_jwk(jwk)
                .map_err(|err| KeyError::BadJwks(format!("keys[{index}]: {err}")))?;
            if set.get(key.key_id()).is_some() {
                return Err(KeyError::BadJwks(format!(
                    "keys[{index}]: the key id `{}` is given twice",
                    key.key_id()
                )));
            }
            set.keys.push(key);
        }
        Ok(set)
    }

    /// Adds `key`, replacing a key of the same id.
    pub fn insert(&mut self, key: PublicKey) {
        match self.keys.iter_mut().find(|k| k.key_id() == key.key_id()) {
            Some(slot) => *slot = key,
            None => self.keys.push(key),
        }
    }

    /// The key of id `kid`.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|key| key.key_id() == kid)
    }

    /// The key ids, in order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(PublicKey::key_id)
    }

    /// The set as a JWKS document.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(PublicKey::jwk).collect::<Vec<_>>() })
    }

    /// The claims of `jws` when a key of this set signed it, with that key's algorithm, and it
    /// meets `expect`.
    pub fn verify<T: DeserializeOwned>(
        &self,
        jws: &str,
        expect: &Expectations,
    ) -> Result<T, VerifyError> {
        let header = decode_header(jws).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.unwrap_or_default();
        let Some(key) = self.get(&kid) else {
            return Err(VerifyError::UnknownKey { kid });
        };
        if header.alg != key.algorithm().jsonwebtoken() {
            return Err(VerifyError::AlgorithmMismatch);
        }
        if header.typ.as_deref() != Some(expect.typ.as_str()) {
            return Err(VerifyError::WrongType);
        }
        let mut validation = Validation::new(key.algorithm().jsonwebtoken());
        validation.set_issuer(&[&expect.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.leeway = expect.leeway_secs;
        validation.validate_nbf = true;
        match &expect.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        decode::<T>(jws, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::InvalidSignature => VerifyError::BadSignature,
                ErrorKind::ExpiredSignature => VerifyError::Expired,
                ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
                ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
                ErrorKind::InvalidAudience => VerifyError::WrongAudience,
                ErrorKind::MissingRequiredClaim(_) => VerifyError::MissingClaim,
                ErrorKind::InvalidAlgorithm => VerifyError::AlgorithmMismatch,
                _ => VerifyError::Malformed,
            })
    }
}
