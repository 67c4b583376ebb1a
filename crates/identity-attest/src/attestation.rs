//! [`Attestor`] and [`AttestationVerifier`]: a resolution as a signed statement.

use std::time::Duration;

use identity_core::{OffsetDateTime, RequestContext};
use identity_router::Resolution;
use identity_signing::{Expectations, KeyError, KeySet, Signer, VerifyError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::context_digest;

/// The `typ` of an attestation's header: a statement of another kind (an approval) signed by
/// the same key is not taken for one.
pub const ATTESTATION_TYPE: &str = "agent-identity-attestation+jwt";

/// The issuer attestations name unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "agent-identity";

/// How long an attestation holds unless configured otherwise (and never past the credential's
/// own expiry).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// What an attestation states.
///
/// ```
/// fn for_whom(a: &identity_attest::Attestation) -> (&str, &str) { (&a.sub, &a.resolved_for) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Attestation {
    /// Who attests (the deployment's issuer).
    pub iss: String,
    /// The user the request was for (its `userId`).
    pub sub: String,
    /// Whom the attestation is meant for, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// A unique id of this attestation.
    pub jti: String,
    /// When the resolution was made (seconds since the epoch).
    pub iat: i64,
    /// Until when the attestation holds (seconds since the epoch).
    pub exp: i64,
    /// The authenticated caller that asked, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The workload (SPIFFE id) the request was made for, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// `resolvedFor`: the user for a user-delegated credential, `service` otherwise.
    pub resolved_for: String,
    /// The rule that decided.
    pub rule: String,
    /// The credential granted (its id, never its value).
    pub credential_id: String,
    /// `primary` or `canary`.
    pub arm: String,
    /// When the credential itself expires, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_expires_at: Option<i64>,
    /// The request's trace id.
    pub trace_id: String,
    /// [`context_digest`](crate::context_digest) of the request context.
    pub ctx: String,
}

/// Why an attestation could not be made or was refused.
///
/// ```
/// use identity_attest::AttestationError;
/// assert_eq!(AttestationError::ContextMismatch.to_string(),
///     "the attestation was made for another request context");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// The attestation could not be signed.
    #[error("the attestation could not be signed: {0}")]
    Signing(#[from] KeyError),
    /// The statement is not a valid attestation.
    #[error("not a valid attestation: {0}")]
    Refused(#[from] VerifyError),
    /// The attestation is valid, for another context than the one it is checked against.
    #[error("the attestation was made for another request context")]
    ContextMismatch,
}

/// Signs attestations of resolutions with the deployment's key.
///
/// ```
/// use identity_attest::Attestor;
/// use identity_signing::{Algorithm, Signer, SigningKey};
/// let attestor = Attestor::new(Signer::new(SigningKey::generate(Algorithm::Es256, "k1")?))
///     .with_issuer("https://identity.example")
///     .with_ttl(std::time::Duration::from_secs(60))
///     .with_audience("payments");
/// assert_eq!(attestor.jwks()["keys"][0]["kid"], "k1");
/// # Ok::<(), identity_signing::KeyError>(())
/// ```
#[derive(Debug)]
pub struct Attestor {
    signer: Signer,
    issuer: String,
    ttl: Duration,
    audience: Option<String>,
}

impl Attestor {
    /// Attestations signed by `signer`, issued as [`DEFAULT_ISSUER`], holding [`DEFAULT_TTL`].
    pub fn new(signer: Signer) -> Self {
        Self {
            signer,
            issuer: DEFAULT_ISSUER.into(),
            ttl: DEFAULT_TTL,
            audience: None,
        }
    }

    /// Names `issuer` as who attests.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Attestations hold for `ttl` (and never past the credential's expiry).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Attestations are meant for `audience` (their `aud`).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The issuer named.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The published keys: the active one and those it replaced.
    pub fn jwks(&self) -> Value {
        self.signer.jwks()
    }

    /// A verifier of this attestor's statements (its issuer, audience and keys).
    pub fn verifier(&self) -> AttestationVerifier {
        AttestationVerifier {
            keys: self.signer.key_set().clone(),
            expect: expectations(&self.issuer, self.audience.as_deref()),
        }
    }

    /// The attestation of `resolution`, granted for `ctx` at the asking of `caller`, now.
    pub fn attest(
        &self,
        ctx: &RequestContext,
        resolution: &Resolution,
        caller: Option<&str>,
    ) -> Result<String, AttestationError> {
        self.attest_at(ctx, resolution, caller, OffsetDateTime::now_utc())
    }

    /// As [`Attestor::attest`], at `now`.
    pub fn attest_at(
        &self,
        ctx: &RequestContext,
        resolution: &Resolution,
        caller: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<String, AttestationError> {
        let iat = now.unix_timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let credential_expires_at = resolution.expires_at.map(OffsetDateTime::unix_timestamp);
        let exp = match credential_expires_at {
            Some(expiry) => iat.saturating_add(ttl).min(expiry),
            None => iat.saturating_add(ttl),
        };
        let attestation = Attestation {
            iss: self.issuer.clone(),
            sub: ctx.user_id.clone(),
            aud: self.audience.clone(),
            jti: jti()?,
            iat,
            exp,
            caller: caller.map(str::to_owned),
            workload: ctx.spiffe_id.clone(),
            resolved_for: resolution.resolved_for.clone(),
            rule: resolution.rule_id.to_string(),
            credential_id: resolution.credential_id.clone(),
            arm: resolution.arm.as_str().to_owned(),
            credential_expires_at,
            trace_id: ctx.trace_id.clone(),
            ctx: context_digest(ctx),
        };
        Ok(self.signer.sign(ATTESTATION_TYPE, &attestation)?)
    }
}

fn expectations(issuer: &str, audience: Option<&str>) -> Expectations {
    let expect = Expectations::new(issuer, ATTESTATION_TYPE);
    match audience {
        Some(audience) => expect.with_audience(audience),
        None => expect,
    }
}

/// A random id of 128 bits, base64url.
fn jti() -> Result<String, AttestationError> {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| KeyError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Checks attestations against published keys.
///
/// ```
/// let err = identity_attest::AttestationVerifier::from_jwks(&serde_json::json!({})).unwrap_err();
/// assert!(err.to_string().contains("keys"));
/// ```
#[derive(Debug, Clone)]
pub struct AttestationVerifier {
    keys: KeySet,
    expect: Expectations,
}

impl AttestationVerifier {
    /// A verifier of the keys in `jwks` (as the sidecar serves them), for attestations of
    /// [`DEFAULT_ISSUER`] without an audience.
    pub fn from_jwks(jwks: &Value) -> Result<Self, KeyError> {
        Ok(Self::new(KeySet::from_jwks(jwks)?))
    }

    /// A verifier of `keys`, for attestations of [`DEFAULT_ISSUER`] without an audience.
    pub fn new(keys: KeySet) -> Self {
        Self {
            keys,
            expect: expectations(DEFAULT_ISSUER, None),
        }
    }

    /// Accepts attestations of `issuer` only, meant for `audience` when one is given.
    pub fn expecting(mut self, issuer: &str, audience: Option<&str>) -> Self {
        self.expect = expectations(issuer, audience);
        self
    }

    /// What `jws` states, when a published key signed it and it has not lapsed.
    pub fn verify(&self, jws: &str) -> Result<Attestation, AttestationError> {
        Ok(self.keys.verify(jws, &self.expect)?)
    }

    /// As [`AttestationVerifier::verify`], and made for exactly `ctx`.
    pub fn verify_for(
        &self,
        jws: &str,
        ctx: &RequestContext,
    ) -> Result<Attestation, AttestationError> {
        let attestation = self.verify(jws)?;
        if attestation.ctx != context_digest(ctx) {
            return Err(AttestationError::ContextMismatch);
        }
        Ok(attestation)
    }
}
