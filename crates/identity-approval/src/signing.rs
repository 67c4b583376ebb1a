//! [`ApprovalSigner`] and [`ApprovalVerifier`]: a granted approval as a signed statement
//! (Ed25519, a compact JWS of type `agent-identity-approval+jwt`) that any replica and any auditor can check.

use std::fmt;

use std::sync::Arc;

use identity_core::{Error, OffsetDateTime};
use identity_signing::{Algorithm, Expectations, KeySet, PublicKey, Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::record::Approval;

/// Who issues the statements, in their `iss`.
pub const STATEMENT_ISSUER: &str = "agent-identity";

/// What a signed approval says.
///
/// ```
/// fn approvers(statement: &identity_approval::Statement) -> &[String] { &statement.approvers }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Statement {
    /// [`STATEMENT_ISSUER`].
    pub iss: String,
    /// The approval's id.
    pub jti: String,
    /// The user the call acts for.
    pub sub: String,
    /// The digest of the approved call.
    pub call: String,
    /// What the call does, for people.
    pub summary: String,
    /// The caller that asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Who approved.
    pub approvers: Vec<String>,
    /// Who passed it by break-glass, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlassClaim>,
    /// When it was granted (seconds since the epoch).
    pub iat: i64,
    /// Until when it may be used.
    pub exp: i64,
}

/// A break-glass pass in a [`Statement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BreakGlassClaim {
    /// Who.
    pub by: String,
    /// Why.
    pub justification: String,
}

/// The `typ` of a signed approval's header.
pub const STATEMENT_TYPE: &str = "agent-identity-approval+jwt";

/// Signs granted approvals with an Ed25519 key. `Debug` shows the key id only.
///
/// ```
/// let signer = identity_approval::ApprovalSigner::generate("k1")?;
/// assert_eq!(signer.verifier().key_id(), "k1");
/// assert!(!format!("{signer:?}").contains("PRIVATE"));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ApprovalSigner {
    signer: Arc<Signer>,
    verifier: ApprovalVerifier,
}

impl fmt::Debug for ApprovalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalSigner")
            .field("key_id", &self.verifier.key_id())
            .finish_non_exhaustive()
    }
}

impl ApprovalSigner {
    /// The Ed25519 key in `pem` (PKCS#8, as `openssl genpkey -algorithm ed25519` writes it),
    /// known as `key_id`.
    ///
    /// ```
    /// assert!(identity_approval::ApprovalSigner::from_pem("not a key", "k1").is_err());
    /// ```
    pub fn from_pem(pem: &str, key_id: impl Into<String>) -> Result<Self, Error> {
        let key = SigningKey::from_pem(pem, key_id).map_err(|err| {
            Error::from(identity_core::ConfigError::new(
                "approvals signing key",
                None,
                err.to_string(),
            ))
        })?;
        if key.algorithm() != Algorithm::EdDsa {
            return Err(identity_core::ConfigError::new(
                "approvals signing key",
                None,
                "is not an Ed25519 key",
            )
            .into());
        }
        Ok(Self::of(key))
    }

    /// A fresh key, known as `key_id`: statements it signs are checked only by verifiers given
    /// its public key ([`ApprovalSigner::verifier`]). Replicas must share one configured key.
    pub fn generate(key_id: impl Into<String>) -> Result<Self, Error> {
        let key = SigningKey::generate(Algorithm::EdDsa, key_id)
            .map_err(|err| Error::unavailable("approvals", err.to_string()))?;
        Ok(Self::of(key))
    }

    fn of(key: SigningKey) -> Self {
        let verifier = ApprovalVerifier {
            key: key.public_key().clone(),
        };
        Self {
            signer: Arc::new(Signer::new(key)),
            verifier,
        }
    }

    /// What checks this signer's statements.
    pub fn verifier(&self) -> &ApprovalVerifier {
        &self.verifier
    }

    /// The signed statement of `approval`, granted at `now`.
    pub(crate) fn sign(&self, approval: &Approval, now: OffsetDateTime) -> Result<String, Error> {
        let statement = Statement {
            iss: STATEMENT_ISSUER.into(),
            jti: approval.id.clone(),
            sub: approval.call.user_id.clone(),
            call: approval.call_digest.clone(),
            summary: approval.call.describe(),
            requester: approval.requester.clone(),
            approvers: approval
                .approvals
                .iter()
                .map(|vote| vote.by.clone())
                .collect(),
            break_glass: approval.break_glass.as_ref().map(|vote| BreakGlassClaim {
                by: vote.by.clone(),
                justification: vote.note.clone().unwrap_or_default(),
            }),
            iat: now.unix_timestamp(),
            exp: approval.expires_at.unix_timestamp(),
        };
        self.signer
            .sign(STATEMENT_TYPE, &statement)
            .map_err(|_| Error::unavailable("approvals", "the approval could not be signed"))
    }
}

/// Checks signed approvals with an Ed25519 public key.
///
/// ```
/// let signer = identity_approval::ApprovalSigner::generate("k1")?;
/// let err = signer.verifier().verify("e30.e30.AAAA").unwrap_err();
/// assert!(err.to_string().contains("not a valid signed approval"));
/// assert_eq!(signer.verifier().jwk()["crv"], "Ed25519");
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ApprovalVerifier {
    key: PublicKey,
}

impl fmt::Debug for ApprovalVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalVerifier")
            .field("key_id", &self.key.key_id())
            .finish_non_exhaustive()
    }
}

impl ApprovalVerifier {
    /// A verifier of the public key `x` (base64url, as in a JWK), known as `key_id`.
    pub fn new(x: &str, key_id: impl Into<String>) -> Result<Self, Error> {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": key_id.into(), "x": x});
        let key = PublicKey::from_jwk(&jwk).map_err(|_| {
            Error::from(identity_core::ConfigError::new(
                "approvals public key",
                None,
                "is not an Ed25519 public key",
            ))
        })?;
        Ok(Self { key })
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        self.key.key_id()
    }

    /// The public key as a JWK, for auditors.
    pub fn jwk(&self) -> serde_json::Value {
        self.key.jwk()
    }

    /// What `jws` states, when this key signed it and it has not lapsed.
    pub fn verify(&self, jws: &str) -> Result<Statement, Error> {
        KeySet::from_keys([self.key.clone()])
            .verify(jws, &Expectations::new(STATEMENT_ISSUER, STATEMENT_TYPE))
            .map_err(|err| {
                Error::unavailable("approvals", format!("not a valid signed approval: {err}"))
            })
    }
}
