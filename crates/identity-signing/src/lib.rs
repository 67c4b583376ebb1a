//! Signing keys for agent-identity: statements signed as compact JWS (RFC 7515) with Ed25519
//! or ES256 keys under key ids, the public keys published as a JWKS (RFC 7517), and a verifier
//! that says why it refuses.
//!
//! A [`Signer`] signs with one active key and publishes it with the keys it replaced, so that
//! a statement signed before a rotation still verifies until its key is dropped. A [`KeySet`]
//! checks statements against published keys: by key id, with the key's own algorithm (a header
//! cannot choose another), the issuer, the type and the expiry.
//!
//! ```
//! use identity_signing::{Algorithm, Expectations, Signer, SigningKey, VerifyError};
//! use serde_json::{Value, json};
//!
//! let old = SigningKey::generate(Algorithm::EdDsa, "2026-10")?;
//! let old_public = old.public_key().clone();
//! let claims = json!({"iss": "agent-identity", "sub": "alice", "exp": 4_102_444_800_i64});
//! let statement = Signer::new(old).sign("example+jwt", &claims)?;
//!
//! // Rotated: a new active key, the old one still published.
//! let signer = Signer::new(SigningKey::generate(Algorithm::Es256, "2026-11")?)
//!     .with_previous(old_public);
//! let expect = Expectations::new("agent-identity", "example+jwt");
//! let seen: Value = signer.key_set().verify(&statement, &expect)?;
//! assert_eq!(seen["sub"], "alice");
//!
//! // Once the old key is dropped, its statements are refused by key id.
//! let dropped = Signer::new(SigningKey::generate(Algorithm::Es256, "2026-12")?);
//! let refused = dropped.key_set().verify::<Value>(&statement, &expect).unwrap_err();
//! assert!(matches!(refused, VerifyError::UnknownKey { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod jws;
mod key;
mod signer;

pub use jws::{Expectations, KeySet, VerifyError};
pub use key::{Algorithm, PublicKey, SigningKey};
pub use signer::Signer;

/// A key that cannot be read or made.
///
/// ```
/// let err = identity_signing::SigningKey::from_pem("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n", "k").unwrap_err();
/// assert!(err.to_string().contains("PUBLIC KEY"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a PEM document.
    #[error("the key is not a PEM document")]
    NotPem,
    /// The key is of a kind not supported.
    #[error("the key is not supported: {0}")]
    Unsupported(String),
    /// A JWK that does not describe a supported public key.
    #[error("the JWK is not an Ed25519 or P-256 public key: {0}")]
    BadJwk(String),
    /// A JWKS that is not `{"keys": [...]}`, or names one key id twice.
    #[error("the JWKS is not acceptable: {0}")]
    BadJwks(String),
    /// An empty key id, one over 128 characters, or one with control characters.
    #[error("a key id must be 1 to 128 characters, none of them control characters")]
    BadKeyId,
    /// The system's random source failed.
    #[error("the system's random source failed")]
    Random,
    /// The claims could not be written as JSON.
    #[error("the statement could not be written as JSON")]
    Claims,
}
