//! Attestations of real resolutions: what they state, and each reason one is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use identity_attest::{AttestationError, AttestationVerifier, Attestor, context_digest};
use identity_core::{
    Canary, CanaryWeight, Credential, CredentialKind, OffsetDateTime, RequestContext, ResourceKind,
    RoutingRule, Secret,
};
use identity_router::{Resolution, Router};
use identity_signing::{Algorithm, Signer, SigningKey, VerifyError};

fn ctx(user: &str) -> RequestContext {
    RequestContext::builder()
        .user_id(user)
        .resource_id("docs")
        .resource_kind(ResourceKind::Personal)
        .provider("openai")
        .model("gpt-4o")
        .action("read")
        .trace_id("trace-7")
        .spiffe_id("spiffe://acme.test/agent")
        .build()
        .unwrap()
}

async fn resolved(user: &str) -> Resolution {
    let store = identity_memory::MemoryCredentialStore::new();
    let expires = OffsetDateTime::now_utc() + time::Duration::hours(1);
    store.insert(
        Credential::new("cred-alice", CredentialKind::UserDelegated, "openai-user")
            .unwrap()
            .with_secret(Secret::new("sk-planted-secret"))
            .with_expires_at(expires),
    );
    store.insert(
        Credential::new("cred-next", CredentialKind::UserDelegated, "openai-next")
            .unwrap()
            .with_secret(Secret::new("sk-planted-next")),
    );
    let router = Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("personal", "openai-user")
                .with_priority(1)
                .with_canary(Canary::new(
                    "openai-next",
                    CanaryWeight::percent(50.0).unwrap(),
                )),
        )
        .build()
        .unwrap();
    router.resolve(&ctx(user)).await.unwrap()
}

fn attestor(kid: &str) -> Attestor {
    Attestor::new(Signer::new(
        SigningKey::generate(Algorithm::EdDsa, kid).unwrap(),
    ))
}

#[tokio::test]
async fn an_attestation_states_the_resolution_and_no_secret() {
    let attestor = attestor("k1").with_audience("auditor");
    let resolution = resolved("alice").await;
    let jws = attestor
        .attest(&ctx("alice"), &resolution, Some("billing-agent"))
        .unwrap();
    assert!(!jws.contains("sk-planted"));
    let attestation = attestor.verifier().verify_for(&jws, &ctx("alice")).unwrap();
    assert_eq!(attestation.sub, "alice");
    assert_eq!(attestation.resolved_for, "alice");
    assert_eq!(attestation.rule, "personal");
    assert_eq!(attestation.credential_id, resolution.credential_id);
    assert_eq!(attestation.arm, resolution.arm.as_str());
    assert_eq!(attestation.caller.as_deref(), Some("billing-agent"));
    assert_eq!(
        attestation.workload.as_deref(),
        Some("spiffe://acme.test/agent")
    );
    assert_eq!(attestation.trace_id, "trace-7");
    assert_eq!(attestation.ctx, context_digest(&ctx("alice")));
    assert_eq!(attestation.aud.as_deref(), Some("auditor"));
    assert!(attestation.exp > attestation.iat && attestation.exp <= attestation.iat + 300);
    // Checked against another context, it is refused.
    assert_eq!(
        attestor.verifier().verify_for(&jws, &ctx("bob")),
        Err(AttestationError::ContextMismatch)
    );
}

#[tokio::test]
async fn the_attestation_ends_with_the_credential_and_then_is_refused() {
    let attestor = attestor("k1").with_ttl(std::time::Duration::from_secs(86_400));
    let resolution = resolved("alice").await;
    let now = OffsetDateTime::now_utc();
    let jws = attestor
        .attest_at(&ctx("alice"), &resolution, None, now)
        .unwrap();
    let attestation = attestor.verifier().verify(&jws).unwrap();
    if resolution.arm.is_canary() {
        // The canary credential never expires: a day.
        assert_eq!(attestation.exp, now.unix_timestamp() + 86_400);
    } else {
        assert_eq!(
            Some(attestation.exp),
            resolution.expires_at.map(OffsetDateTime::unix_timestamp)
        );
    }
    let old = attestor
        .attest_at(
            &ctx("alice"),
            &resolution,
            None,
            now - time::Duration::days(3),
        )
        .unwrap();
    assert_eq!(
        attestor.verifier().verify(&old),
        Err(AttestationError::Refused(VerifyError::Expired))
    );
}

#[tokio::test]
async fn tampered_and_foreign_attestations_are_refused() {
    let attestor = attestor("k1");
    let resolution = resolved("alice").await;
    let jws = attestor.attest(&ctx("alice"), &resolution, None).unwrap();
    let mut parts: Vec<&str> = jws.split('.').collect();
    let other = attestor.attest(&ctx("bob"), &resolution, None).unwrap();
    let other_payload = other.split('.').nth(1).unwrap();
    parts[1] = other_payload;
    assert_eq!(
        attestor.verifier().verify(&parts.join(".")),
        Err(AttestationError::Refused(VerifyError::BadSignature))
    );
    let stranger = self::attestor("k2");
    let foreign = stranger.attest(&ctx("alice"), &resolution, None).unwrap();
    assert_eq!(
        attestor.verifier().verify(&foreign),
        Err(AttestationError::Refused(VerifyError::UnknownKey {
            kid: "k2".into()
        }))
    );
    // An attestor of another issuer is not this deployment.
    let elsewhere = Attestor::new(Signer::new(
        SigningKey::generate(Algorithm::EdDsa, "k1").unwrap(),
    ))
    .with_issuer("https://elsewhere.example");
    let theirs = elsewhere.attest(&ctx("alice"), &resolution, None).unwrap();
    let keys_only = AttestationVerifier::from_jwks(&elsewhere.jwks()).unwrap();
    assert_eq!(
        keys_only.verify(&theirs).unwrap_err(),
        AttestationError::Refused(VerifyError::WrongIssuer)
    );
    assert!(elsewhere.verifier().verify(&theirs).is_ok());
}

#[tokio::test]
async fn after_a_rotation_old_attestations_still_verify() {
    let first = SigningKey::generate(Algorithm::EdDsa, "2026-10").unwrap();
    let first_public = first.public_key().clone();
    let before = Attestor::new(Signer::new(first));
    let resolution = resolved("alice").await;
    let old = before.attest(&ctx("alice"), &resolution, None).unwrap();
    let after = Attestor::new(
        Signer::new(SigningKey::generate(Algorithm::Es256, "2026-11").unwrap())
            .with_previous(first_public),
    );
    let new = after.attest(&ctx("alice"), &resolution, None).unwrap();
    let verifier = AttestationVerifier::from_jwks(&after.jwks()).unwrap();
    assert!(verifier.verify(&old).is_ok());
    assert!(verifier.verify(&new).is_ok());
}
