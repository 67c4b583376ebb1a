//! [`Signer`]: the active key, and the earlier keys still published.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;

use crate::{KeyError, KeySet, PublicKey, SigningKey};

/// Signs with one active key; publishes it with the keys it replaced ([`Signer::key_set`]),
/// so that statements signed before a rotation verify until their key is dropped.
///
/// ```
/// use identity_signing::{Algorithm, Signer, SigningKey};
/// let before = SigningKey::generate(Algorithm::EdDsa, "k1")?;
/// let earlier = before.public_key().clone();
/// let signer = Signer::new(SigningKey::generate(Algorithm::EdDsa, "k2")?).with_previous(earlier);
/// let kids: Vec<_> = signer.jwks()["keys"].as_array().unwrap().iter()
///     .map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
/// assert_eq!(kids, ["k2", "k1"]);
/// # Ok::<(), identity_signing::KeyError>(())
/// ```
#[derive(Debug)]
pub struct Signer {
    active: SigningKey,
    keys: KeySet,
}

impl Signer {
    /// A signer of `active`, publishing it alone.
    pub fn new(active: SigningKey) -> Self {
        let keys = KeySet::from_keys([active.public_key().clone()]);
        Self { active, keys }
    }

    /// Also publishes `previous` (a key this one replaced). A key of the active key's id is
    /// left out: the active key is the one published under its id.
    pub fn with_previous(mut self, previous: PublicKey) -> Self {
        if previous.key_id() != self.active.key_id() {
            self.keys.insert(previous);
        }
        self
    }

    /// The active key.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The published keys: the active one, then earlier ones.
    pub fn key_set(&self) -> &KeySet {
        &self.keys
    }

    /// The published keys as a JWKS document.
    pub fn jwks(&self) -> Value {
        self.keys.jwks()
    }

    /// `claims` signed with the active key: a compact JWS whose header names the algorithm, the
    /// key id and `typ` (a media type such as `agent-identity-attestation+jwt`, so that a
    /// statement of one kind is not taken for another).
    ///
    /// ```
    /// use identity_signing::{Algorithm, Signer, SigningKey};
    /// let signer = Signer::new(SigningKey::generate(Algorithm::Es256, "k1")?);
    /// let jws = signer.sign("example+jwt", &serde_json::json!({"sub": "alice"}))?;
    /// assert_eq!(jws.split('.').count(), 3);
    /// # Ok::<(), identity_signing::KeyError>(())
    /// ```
    pub fn sign<T: Serialize + ?Sized>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: &'a str,
            typ: &'a str,
        }
        let header = serde_json::to_vec(&Header {
            alg: self.active.algorithm().jose_name(),
            kid: self.active.key_id(),
            typ,
        })
        .map_err(|_| KeyError::Claims)?;
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Claims)?;
        let mut jws = URL_SAFE_NO_PAD.encode(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jws);
        let signature = self.active.sign_bytes(jws.as_bytes());
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }
}
