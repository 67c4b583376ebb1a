//! Signed attestations of agent-identity resolutions.
//!
//! An [`Attestor`] states, for one resolution, who asked, for whom, which rule decided, which
//! credential it granted (and on which arm of a canary), when, until when, and the digest of
//! the request context it was granted for; signed as a compact JWS with a key of the
//! deployment's configuration (never one a caller gives). Anyone holding the published keys
//! (the JWKS) checks it with an [`AttestationVerifier`], or with any JOSE library: the header
//! is `{"alg": "EdDSA" | "ES256", "kid", "typ": "agent-identity-attestation+jwt"}`.
//!
//! The attestation carries no secret: the credential's id, never its value.
//!
//! ```
//! use identity_attest::{AttestationVerifier, Attestor};
//! use identity_core::*;
//! use identity_signing::{Algorithm, Signer, SigningKey};
//!
//! let store = identity_memory::MemoryCredentialStore::new();
//! store.insert(Credential::new("cred-1", CredentialKind::Fixed, "openai")?.with_secret(Secret::new("sk-1")));
//! let router = identity_router::Router::builder().default_store(store)
//!     .rule(RoutingRule::new("llm", "openai").with_priority(1)).build().unwrap();
//! let ctx = RequestContext::builder().user_id("alice").resource_id("docs")
//!     .resource_kind(ResourceKind::Shared).provider("openai").model("gpt-4o")
//!     .action("read").trace_id("t1").build().unwrap();
//! let attestor = Attestor::new(Signer::new(SigningKey::generate(Algorithm::EdDsa, "k1").unwrap()));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let resolution = router.resolve(&ctx).await.unwrap();
//! let jws = attestor.attest(&ctx, &resolution, Some("billing-agent")).unwrap();
//! assert!(!jws.contains("sk-1"));
//!
//! let verifier = AttestationVerifier::from_jwks(&attestor.jwks()).unwrap();
//! let attestation = verifier.verify_for(&jws, &ctx).unwrap();
//! assert_eq!(attestation.rule, "llm");
//! assert_eq!(attestation.credential_id, "cred-1");
//! assert_eq!(attestation.caller.as_deref(), Some("billing-agent"));
//! # });
//! # Ok::<(), identity_core::Error>(())
//! ```

mod attestation;
mod digest;

pub use attestation::{
    ATTESTATION_TYPE, Attestation, AttestationError, AttestationVerifier, Attestor, DEFAULT_ISSUER,
    DEFAULT_TTL,
};
pub use digest::context_digest;
