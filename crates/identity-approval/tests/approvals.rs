//! Approvals as a router gate: a held call passes once after approval, bound to the exact call;
//! the requester cannot approve; approvals lapse; two of three approvers; break-glass; signed
//! statements; and two replicas sharing Vault (a real OpenBao) use one approval once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test is a failed test"
)]

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use identity_approval::{
    Approval, ApprovalError, ApprovalNotifier, ApprovalSigner, ApprovalState, ApprovalStore,
    Approvals, MemoryApprovals, SharedApprovals,
};
use identity_core::{
    ApprovalRequirement, Credential, CredentialKind, OffsetDateTime, RequestContext, ResourceKind,
    RoutingRule, Secret,
};
use identity_router::{Call, DenialReason, Intent, Purpose, Router};

thread_local! {
    /// How far this test's clock runs ahead, in seconds.
    static AHEAD: Cell<i64> = const { Cell::new(0) };
}

fn clock() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(AHEAD.with(Cell::get))
}

#[derive(Debug, Default)]
struct Told {
    pending: Mutex<Vec<String>>,
    break_glass: Mutex<Vec<String>>,
}

impl ApprovalNotifier for Told {
    fn pending(&self, approval: &Approval) {
        self.pending.lock().unwrap().push(approval.id.clone());
    }
    fn break_glass(&self, approval: &Approval) {
        self.break_glass.lock().unwrap().push(approval.id.clone());
    }
}

fn router(demand: ApprovalRequirement, approvals: &Approvals) -> Router {
    let store = identity_memory::MemoryCredentialStore::new();
    store.insert(
        Credential::new("pay", CredentialKind::Fixed, "payments")
            .unwrap()
            .with_secret(Secret::new("sk-pay")),
    );
    Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("payments", "payments")
                .with_priority(1)
                .with_require_approval(demand),
        )
        .gate(approvals.clone())
        .build()
        .unwrap()
}

fn approvals_in(store: Arc<dyn ApprovalStore>, told: &Arc<Told>) -> Approvals {
    Approvals::new(store, ApprovalSigner::generate("k1").unwrap())
        .with_notifier(told.clone())
        .with_clock(clock)
}

fn context(user: &str) -> RequestContext {
    RequestContext::builder()
        .user_id(user)
        .resource_id("ledger")
        .resource_kind(ResourceKind::Shared)
        .provider("bank")
        .model("m")
        .action("write")
        .trace_id("t")
        .build()
        .unwrap()
}

fn transfer(body: &[u8]) -> Intent {
    Intent::new(Purpose::Proxy(
        Call::new("bank", "POST", "/transfers").with_body(body),
    ))
    .requested_by("agent")
}

/// The approval id of a held call.
fn held(outcome: Result<identity_router::Resolution, identity_router::Denial>) -> String {
    match outcome.map(|_| ()).unwrap_err().reason {
        DenialReason::ApprovalRequired { approval_id, .. } => approval_id,
        other => panic!("not held: {other:?}"),
    }
}

#[tokio::test]
async fn an_approved_call_passes_once_and_only_that_call() {
    let told = Arc::new(Told::default());
    let approvals = approvals_in(Arc::new(MemoryApprovals::default()), &told);
    let router = router(ApprovalRequirement::default(), &approvals);
    let alice = context("alice");
    let call = transfer(br#"{"amount": 10}"#);

    let id = held(router.resolve_for(&alice, &call).await);
    // Asked again before anyone decides: the same approval, notified once.
    assert_eq!(held(router.resolve_for(&alice, &call).await), id);
    assert_eq!(*told.pending.lock().unwrap(), std::slice::from_ref(&id));

    let approval = approvals.approve(&id, "bob").await.unwrap();
    assert_eq!(approval.state, ApprovalState::Granted);

    // Another body, path or user is another call.
    assert_ne!(
        held(
            router
                .resolve_for(&alice, &transfer(br#"{"amount": 10000}"#))
                .await
        ),
        id
    );
    let other_path = Intent::new(Purpose::Proxy(
        Call::new("bank", "POST", "/transfers/urgent").with_body(br#"{"amount": 10}"#),
    ))
    .requested_by("agent");
    assert_ne!(held(router.resolve_for(&alice, &other_path).await), id);
    assert_ne!(
        held(router.resolve_for(&context("mallory"), &call).await),
        id
    );

    let granted = router.resolve_for(&alice, &call).await.unwrap();
    assert_eq!(granted.secret().unwrap().expose_secret(), "sk-pay");
    assert!(
        granted.notes().iter().any(|note| note.contains("`bob`")),
        "{:?}",
        granted.notes()
    );
    // Used once: the same call again needs a new approval.
    let again = held(router.resolve_for(&alice, &call).await);
    assert_ne!(again, id);
    assert_eq!(approvals.get(&id).await.unwrap().state, ApprovalState::Used);
}

#[tokio::test]
async fn the_requester_cannot_approve_its_own_call() {
    let told = Arc::new(Told::default());
    let approvals = approvals_in(Arc::new(MemoryApprovals::default()), &told);
    let router = router(ApprovalRequirement::default(), &approvals);
    let id = held(
        router
            .resolve_for(&context("alice"), &transfer(b"{}"))
            .await,
    );
    let err = approvals.approve(&id, "agent").await.unwrap_err();
    assert!(matches!(err, ApprovalError::SelfApproval(_)), "{err}");
    assert_eq!(
        approvals.get(&id).await.unwrap().state,
        ApprovalState::Pending
    );
}

#[tokio::test]
async fn approvals_lapse_pending_and_granted() {
    AHEAD.with(|ahead| ahead.set(0));
    let told = Arc::new(Told::default());
    let approvals = approvals_in(Arc::new(MemoryApprovals::default()), &told);
    let router = router(ApprovalRequirement::default().with_ttl_secs(60), &approvals);
    let alice = context("alice");
    let call = transfer(b"{}");

    let id = held(router.resolve_for(&alice, &call).await);
    AHEAD.with(|ahead| ahead.set(61));
    let err = approvals.approve(&id, "bob").await.unwrap_err();
    assert!(matches!(err, ApprovalError::Expired(_)), "{err}");

    // A new one, approved, then not used in time.
    let fresh = held(router.resolve_for(&alice, &call).await);
    assert_ne!(fresh, id);
    approvals.approve(&fresh, "bob").await.unwrap();
    AHEAD.with(|ahead| ahead.set(61 + 61));
    assert_ne!(held(router.resolve_for(&alice, &call).await), fresh);
    AHEAD.with(|ahead| ahead.set(0));
}

#[tokio::test]
async fn two_of_three_named_approvers_are_needed() {
    let told = Arc::new(Told::default());
    let approvals = approvals_in(Arc::new(MemoryApprovals::default()), &told);
    let router = router(
        ApprovalRequirement::new(2, ["alice", "bob", "carol"]),
        &approvals,
    );
    let ctx = context("dave");
    let call = transfer(b"{}");
    let id = held(router.resolve_for(&ctx, &call).await);

    let err = approvals.approve(&id, "mallory").await.unwrap_err();
    assert!(matches!(err, ApprovalError::NotAnApprover(_)), "{err}");
    let once = approvals.approve(&id, "alice").await.unwrap();
    assert_eq!(
        (once.state, once.approvals_missing()),
        (ApprovalState::Pending, 1)
    );
    let err = approvals.approve(&id, "alice").await.unwrap_err();
    assert!(matches!(err, ApprovalError::AlreadyApproved(_)), "{err}");
    // Still held, and the denial says one more approval is needed.
    match router.resolve_for(&ctx, &call).await.unwrap_err().reason {
        DenialReason::ApprovalRequired {
            approval_id,
            approvals_needed,
            ..
        } => {
            assert_eq!((approval_id.as_str(), approvals_needed), (id.as_str(), 1));
        }
        other => panic!("{other:?}"),
    }
    let twice = approvals.approve(&id, "carol").await.unwrap();
    assert_eq!(twice.state, ApprovalState::Granted);
    assert!(router.resolve_for(&ctx, &call).await.is_ok());
}

#[tokio::test]
async fn a_rejected_call_stays_refused_until_the_approval_lapses() {
    let told = Arc::new(Told::default());
    let approvals = approvals_in(Arc::new(MemoryApprovals::default()), &told);
    let router = router(ApprovalRequirement::default(), &approvals);
    let ctx = context("alice");
    let call = transfer(b"{}");
    let id = held(router.resolve_for(&ctx, &call).await);
    approvals
        .reject(&id, "bob", Some("not today".into()))
        .await
        .unwrap();
    let denial = router.resolve_for(&ctx, &call).await.unwrap_err();
    assert_eq!(denial.reason.code(), "not_permitted");
    assert!(
        denial.to_string().contains("rejected by `bob`: not today"),
        "{denial}"
    );
    let err = approvals.approve(&id, "carol").await.unwrap_err();
    assert!(matches!(err, ApprovalError::NotPending { .. }), "{err}");
}

#[tokio::test]
async fn break_glass_needs_leave_and_a_justification_and_is_told() {
    let told = Arc::new(Told::default());
    let approvals = approvals_in(Arc::new(MemoryApprovals::default()), &told);
    let ctx = context("alice");
    let call = transfer(b"{}");

    let strict = router(ApprovalRequirement::default(), &approvals);
    let id = held(strict.resolve_for(&ctx, &call).await);
    let err = approvals
        .break_glass(&id, "oncall", "prod is down")
        .await
        .unwrap_err();
    assert!(matches!(err, ApprovalError::BreakGlassNotAllowed), "{err}");

    let lenient = router(
        ApprovalRequirement::default().with_break_glass(true),
        &approvals,
    );
    let other = transfer(b"{\"other\": true}");
    let id = held(lenient.resolve_for(&ctx, &other).await);
    let err = approvals
        .break_glass(&id, "oncall", "   ")
        .await
        .unwrap_err();
    assert!(matches!(err, ApprovalError::JustificationRequired), "{err}");
    assert!(told.break_glass.lock().unwrap().is_empty());

    let passed = approvals
        .break_glass(&id, "oncall", "prod is down")
        .await
        .unwrap();
    assert_eq!(passed.state, ApprovalState::Granted);
    assert_eq!(*told.break_glass.lock().unwrap(), std::slice::from_ref(&id));
    let statement = approvals
        .signer()
        .verifier()
        .verify(passed.statement.as_deref().unwrap())
        .unwrap();
    assert_eq!(statement.break_glass.unwrap().justification, "prod is down");
    assert!(lenient.resolve_for(&ctx, &other).await.is_ok());
}

#[tokio::test]
async fn a_signed_approval_verifies_and_a_tampered_one_does_not() {
    let told = Arc::new(Told::default());
    let approvals = approvals_in(Arc::new(MemoryApprovals::default()), &told);
    let router = router(ApprovalRequirement::default(), &approvals);
    let id = held(
        router
            .resolve_for(&context("alice"), &transfer(b"{}"))
            .await,
    );
    let granted = approvals.approve(&id, "bob").await.unwrap();
    let jws = granted.statement.unwrap();
    let verifier = approvals.signer().verifier();
    let statement = verifier.verify(&jws).unwrap();
    assert_eq!(
        (statement.jti.as_str(), statement.approvers.as_slice()),
        (id.as_str(), &["bob".to_owned()][..])
    );
    assert_eq!(statement.call, granted.call_digest);

    // The payload changed (another approver named): the signature no longer matches.
    let parts: Vec<&str> = jws.split('.').collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(engine.decode(parts[1]).unwrap()).unwrap();
    let forged = engine.encode(payload.replace("\"bob\"", "\"eve\""));
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    let err = verifier.verify(&tampered).unwrap_err();
    assert!(
        err.to_string().contains("signature does not match"),
        "{err}"
    );
    // Another key's verifier refuses the genuine one.
    let stranger = ApprovalSigner::generate("k2").unwrap();
    assert!(stranger.verifier().verify(&jws).is_err());
}

#[tokio::test]
async fn a_granted_record_without_a_valid_signature_is_not_used() {
    let told = Arc::new(Told::default());
    let store = Arc::new(MemoryApprovals::default());
    let approvals = approvals_in(store.clone(), &told);
    let router = router(ApprovalRequirement::default(), &approvals);
    let ctx = context("alice");
    let call = transfer(b"{}");
    let id = held(router.resolve_for(&ctx, &call).await);
    // Someone with write access to the store marks it granted, past the approvers.
    let held_record = store.get(&id).await.unwrap().unwrap();
    let mut forged = held_record.approval.clone();
    forged.state = ApprovalState::Granted;
    forged.statement = Some("e30.e30.AAAA".into());
    assert!(store.replace(&forged, held_record.version).await.unwrap());
    assert!(router.resolve_for(&ctx, &call).await.is_err());
}

#[tokio::test]
async fn a_proxied_call_whose_body_was_not_read_cannot_be_approved() {
    let told = Arc::new(Told::default());
    let approvals = approvals_in(Arc::new(MemoryApprovals::default()), &told);
    let router = router(ApprovalRequirement::default(), &approvals);
    let streamed = Intent::new(Purpose::Proxy(Call::new("bank", "POST", "/transfers")));
    let denial = router
        .resolve_for(&context("alice"), &streamed)
        .await
        .unwrap_err();
    assert_eq!(denial.reason.code(), "not_permitted");
    assert!(denial.to_string().contains("Content-Length"), "{denial}");
    assert!(approvals.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn without_an_approvals_gate_a_demand_refuses() {
    let store = identity_memory::MemoryCredentialStore::new();
    store.insert(
        Credential::new("pay", CredentialKind::Fixed, "payments")
            .unwrap()
            .with_secret(Secret::new("sk-pay")),
    );
    let router = Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("payments", "payments")
                .with_priority(1)
                .with_require_approval(ApprovalRequirement::default()),
        )
        .build()
        .unwrap();
    let denial = router.resolve(&context("alice")).await.unwrap_err();
    assert_eq!(denial.reason.code(), "not_permitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_vault_use_one_approval_once() {
    use identity_test_support::{BAO_ROOT_TOKEN, OpenBao};
    use identity_vault::{VaultAuth, VaultCredentialStore};
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let replica = || {
        let vault = VaultCredentialStore::builder(
            bao.address(),
            VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)),
        )
        .mount("kv")
        .build()
        .unwrap();
        Arc::new(SharedApprovals::new(Arc::new(
            vault.documents("approvals").unwrap(),
        )))
    };
    two_replicas_use_one_approval_once(replica(), replica()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_use_one_approval_once() {
    let server = identity_test_support::RedisServer::start().await;
    let replica = || {
        let redis = identity_redis::RedisConfig::new(server.url())
            .connect("redis", &|_| None)
            .unwrap();
        Arc::new(SharedApprovals::new(Arc::new(
            redis.state("approvals").unwrap(),
        )))
    };
    two_replicas_use_one_approval_once(replica(), replica()).await;
}

async fn two_replicas_use_one_approval_once(one: Arc<SharedApprovals>, two: Arc<SharedApprovals>) {
    // One signing key, configured on both replicas.
    let (pem, _) = identity_test_support::ed25519_key_pair(9);
    let signer = ApprovalSigner::from_pem(&pem, "shared").unwrap();
    let first = Approvals::new(one, signer.clone());
    let second = Approvals::new(two, signer);
    let demand = ApprovalRequirement::new(2, ["alice", "bob", "carol"]);
    let (router_one, router_two) = (router(demand.clone(), &first), router(demand, &second));
    let ctx = context("dave");
    let call = transfer(br#"{"amount": 5}"#);

    // Held on one replica; the other holds the same approval.
    let id = held(router_one.resolve_for(&ctx, &call).await);
    assert_eq!(held(router_two.resolve_for(&ctx, &call).await), id);
    // One approver on each replica.
    first.approve(&id, "alice").await.unwrap();
    let granted = second.approve(&id, "bob").await.unwrap();
    assert_eq!(granted.state, ApprovalState::Granted);
    assert_eq!(granted.approvals.len(), 2);
    // Both replicas try to use it at once: exactly one does.
    let (a, b) = tokio::join!(
        router_one.resolve_for(&ctx, &call),
        router_two.resolve_for(&ctx, &call)
    );
    assert_eq!(
        u8::from(a.is_ok()) + u8::from(b.is_ok()),
        1,
        "{a:?} / {b:?}"
    );
    assert_eq!(first.get(&id).await.unwrap().state, ApprovalState::Used);
    // Listed by both.
    assert!(
        second
            .list()
            .await
            .unwrap()
            .iter()
            .any(|approval| approval.id == id)
    );
}
