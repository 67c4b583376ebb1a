//! [`ApprovalSigner`] and [`ApprovalVerifier`]: a granted approval as a signed statement
//! (Ed25519, a compact JWS) that any replica and any auditor can check.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use identity_core::{Error, OffsetDateTime};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
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
    key: EncodingKey,
    verifier: ApprovalVerifier,
}

impl fmt::Debug for ApprovalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalSigner")
            .field("key_id", &self.verifier.key_id)
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
        let invalid = || {
            Error::from(identity_core::ConfigError::new(
                "approvals signing key",
                None,
                "is not a PKCS#8 PEM Ed25519 private key",
            ))
        };
        let block = pem::parse(pem).map_err(|_| invalid())?;
        if block.tag() != "PRIVATE KEY" {
            return Err(invalid());
        }
        let signing =
            ed25519_dalek::SigningKey::from_pkcs8_der(block.contents()).map_err(|_| invalid())?;
        Self::from_signing_key(&signing, key_id.into())
    }

    /// A fresh key, known as `key_id`: statements it signs are checked only by verifiers given
    /// its public key ([`ApprovalSigner::verifier`]). Replicas must share one configured key.
    pub fn generate(key_id: impl Into<String>) -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|_| Error::unavailable("approvals", "the system's random source failed"))?;
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        seed.fill(0);
        Self::from_signing_key(&signing, key_id.into())
    }

    fn from_signing_key(
        signing: &ed25519_dalek::SigningKey,
        key_id: String,
    ) -> Result<Self, Error> {
        let failed = || Error::unavailable("approvals", "the signing key cannot be used");
        let der = signing.to_pkcs8_der().map_err(|_| failed())?;
        let key = EncodingKey::from_ed_der(der.as_bytes());
        let public = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let verifier = ApprovalVerifier::new(&public, key_id)?;
        Ok(Self { key, verifier })
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
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.verifier.key_id.clone());
        jsonwebtoken::encode(&header, &statement, &self.key)
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
    key: DecodingKey,
    public: String,
    key_id: String,
}

impl fmt::Debug for ApprovalVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalVerifier")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ApprovalVerifier {
    /// A verifier of the public key `x` (base64url, as in a JWK), known as `key_id`.
    pub fn new(x: &str, key_id: impl Into<String>) -> Result<Self, Error> {
        let key = DecodingKey::from_ed_components(x).map_err(|_| {
            Error::from(identity_core::ConfigError::new(
                "approvals public key",
                None,
                "is not an Ed25519 public key",
            ))
        })?;
        Ok(Self {
            key,
            public: x.to_owned(),
            key_id: key_id.into(),
        })
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as a JWK, for auditors.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": self.key_id, "x": self.public,
        })
    }

    /// What `jws` states, when this key signed it and it has not lapsed.
    pub fn verify(&self, jws: &str) -> Result<Statement, Error> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[STATEMENT_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Statement>(jws, &self.key, &validation)
            .map(|data| data.claims)
            .map_err(|err| {
                Error::unavailable(
                    "approvals",
                    format!("not a valid signed approval: {}", reason_of(&err)),
                )
            })
    }
}

/// Why a statement was refused, in words that carry no part of it.
fn reason_of(err: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidSignature => "the signature does not match",
        ErrorKind::ExpiredSignature => "it has expired",
        ErrorKind::InvalidIssuer => "another issuer made it",
        ErrorKind::InvalidAlgorithm => "it is not signed with EdDSA",
        _ => "it cannot be read",
    }
}
