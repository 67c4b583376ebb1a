//! `VaultCredentialStore` against a real OpenBao server (Vault's API), one per test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use identity_core::testing::run_conformance;
use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, CredentialWriter, Error, Secret,
};
use identity_test_support::{
    BAO_ROOT_TOKEN, CapturedLogs, OpenBao, request_context, silent_listener, tls_fixture,
};
use identity_vault::{VaultAuth, VaultCredentialStore, VaultStoreBuilder};
use serde_json::json;

fn reference(text: &str) -> CredentialRef {
    CredentialRef::new(text).unwrap()
}

fn root_store(bao: &OpenBao, mount: &str) -> VaultStoreBuilder {
    VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
        .mount(mount)
        .prefix("agents")
}

fn credential(reference: &str, secret: &str) -> Credential {
    Credential::new(format!("id-{reference}"), CredentialKind::Fixed, reference)
        .unwrap()
        .with_scope("read")
        .with_secret(Secret::new(secret))
}

async fn find(store: &dyn CredentialStore, r: &str) -> Result<Option<Credential>, Error> {
    store.find_by_ref(&reference(r), &request_context()).await
}

/// The policy of a store confined to `kv/…/agents`.
const AGENTS_POLICY: &str = r#"
path "kv/data/agents/*"            { capabilities = ["create", "read", "update", "delete"] }
path "kv/metadata/agents/*"        { capabilities = ["list", "read"] }
path "kv/metadata/agents"          { capabilities = ["list"] }
path "kv/data/agents-leases/*"     { capabilities = ["create", "read", "update"] }
path "kv/metadata/agents-leases/*" { capabilities = ["read"] }
"#;

/// A server with the `agents` policy and one credential, `openai`, under `kv/…/agents`.
async fn with_agents_policy() -> OpenBao {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    bao.write_policy("agents", AGENTS_POLICY).await;
    let root = root_store(&bao, "kv").build().unwrap();
    root.put(credential("openai", "sk-openai")).await.unwrap();
    bao
}

/// A store under `kv/…/agents` authenticating with `auth`, without a cache, so that every read
/// reaches the server with the store's current token.
fn agents_store(bao: &OpenBao, auth: VaultAuth) -> VaultCredentialStore {
    VaultCredentialStore::builder(bao.address(), auth)
        .mount("kv")
        .prefix("agents")
        .build()
        .unwrap()
}

/// Reads `openai` every half second for `seconds`: each read must succeed.
async fn keep_reading(store: &VaultCredentialStore, seconds: u32) {
    for _ in 0..seconds * 2 {
        assert!(find(store, "openai").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_cached_uncached_and_behind_arc_dyn() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("conformance").await;
    let cached = root_store(&bao, "conformance").build().unwrap();
    run_conformance(&cached, "cached").await;
    let uncached = root_store(&bao, "conformance").build().unwrap();
    run_conformance(&uncached, "uncached").await;
    let shared: Arc<dyn CredentialWriter> = Arc::new(
        root_store(&bao, "conformance")
            .prefix("nested/agents")
            .build()
            .unwrap(),
    );
    run_conformance(&shared, "arc-dyn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_pass_the_shared_state_and_budget_counters_conformance_suites() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let replica = |_: usize| {
        root_store(&bao, "kv")
            .build()
            .unwrap()
            .documents("agent-identity-state")
            .unwrap()
    };
    identity_state::testing::run_shared_state_conformance(&replica(0), "one").await;
    // Behind the trait object the shared crates hold, and from a second replica's session.
    let shared: Arc<dyn identity_state::SharedState> = Arc::new(replica(1));
    identity_state::testing::run_shared_state_conformance(shared.as_ref(), "two").await;
    // Budgets counted over the documents, each replica with a session of its own.
    let make = |budgets: &[identity_budget::BudgetConfig]| -> Arc<dyn identity_budget::Counters> {
        let documents: Arc<dyn identity_state::SharedState> = Arc::new(
            root_store(&bao, "kv")
                .build()
                .unwrap()
                .documents("agent-identity-budgets")
                .unwrap(),
        );
        Arc::new(identity_budget::StateCounters::new(documents, budgets))
    };
    identity_budget::testing::run_shared_counters_conformance(&make, "vault").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entry_layout_is_the_credential_json_with_the_secret_beside_it() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let store = root_store(&bao, "kv").build().unwrap();
    store
        .put(credential("vault:openai/user-alice", "sk-alice"))
        .await
        .unwrap();
    let entry = bao
        .ok("GET", "kv/data/agents/vault:openai/user-alice", None)
        .await;
    let data = &entry["data"]["data"];
    assert_eq!(data["ref"], "vault:openai/user-alice");
    assert_eq!(data["kind"], "fixed");
    assert_eq!(data["secret"], "sk-alice");

    // An entry written by an operator in the same shape is served, nested refs included.
    bao.ok(
        "POST",
        "kv/data/agents/openai/user-bob",
        Some(
            json!({"data": {"id": "bob", "kind": "user-delegated", "status": "active",
            "ref": "openai/user-bob", "secret": "sk-bob"}}),
        ),
    )
    .await;
    let bob = find(&store, "openai/user-bob").await.unwrap().unwrap();
    assert_eq!(bob.secret.unwrap().expose_secret(), "sk-bob");
    let listed: Vec<String> = store
        .list_active()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.reference.to_string())
        .collect();
    assert_eq!(listed, ["openai/user-bob", "vault:openai/user-alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_that_requires_check_and_set_still_takes_writes() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    bao.ok("POST", "kv/config", Some(json!({"cas_required": true})))
        .await;
    let store = root_store(&bao, "kv").build().unwrap();
    store.put(credential("openai", "sk-1")).await.unwrap();
    store.put(credential("openai", "sk-2")).await.unwrap();
    let found = find(&store, "openai").await.unwrap().unwrap();
    assert_eq!(found.secret.unwrap().expose_secret(), "sk-2");
    let (_, metadata) = bao.api("GET", "kv/metadata/agents/openai", None).await;
    assert_eq!(metadata["data"]["current_version"], 2);
    assert!(
        store
            .reserve(&reference("openai"), "m1", Duration::from_secs(5))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_are_not_credentials_are_refused_by_name() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let store = root_store(&bao, "kv").build().unwrap();
    bao.ok(
        "POST",
        "kv/data/agents/junk",
        Some(json!({"data": {"password": "sk-junk-canary"}})),
    )
    .await;
    bao.ok(
        "POST",
        "kv/data/agents/moved",
        Some(
            json!({"data": {"id": "m", "kind": "fixed", "status": "active", "ref": "elsewhere",
            "secret": "sk-moved-canary"}}),
        ),
    )
    .await;
    for (slot, says) in [("junk", "not a credential"), ("moved", "`elsewhere`")] {
        let err = find(&store, slot).await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            matches!(&err, Error::Protocol { code, .. } if code == "malformed_entry"),
            "{text}"
        );
        assert!(text.contains(says) && text.contains(slot), "{text}");
        assert!(!text.contains("canary"), "{text}");
    }
    // A listing does not skip a bad entry in silence either.
    assert!(store.list_active().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deleted_entries_read_as_absent_and_leave_listings() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let store = root_store(&bao, "kv").build().unwrap();
    store.put(credential("gone", "sk-gone")).await.unwrap();
    store.put(credential("kept", "sk-kept")).await.unwrap();
    bao.ok("DELETE", "kv/data/agents/gone", None).await;
    assert!(find(&store, "gone").await.unwrap().is_none());
    let listed = store.list_active().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reference.as_str(), "kept");
    // The store's own delete is soft too: an operator can undelete.
    assert!(store.delete(&reference("kept")).await.unwrap());
    bao.ok(
        "POST",
        "kv/undelete/agents/kept",
        Some(json!({"versions": [1]})),
    )
    .await;
    assert!(find(&store, "kept").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_reads_its_prefix_and_is_denied_elsewhere() {
    let bao = with_agents_policy().await;
    let (role_id, secret_id) = bao.approle("agents", &["agents"], "1h", "4h").await;
    let elsewhere = root_store(&bao, "kv").prefix("payroll").build().unwrap();
    elsewhere.put(credential("bank", "sk-bank")).await.unwrap();

    let auth = VaultAuth::app_role(role_id, Secret::new(secret_id));
    let confined = VaultCredentialStore::builder(bao.address(), auth.clone())
        .mount("kv")
        .prefix("agents")
        .build()
        .unwrap();
    let found = find(&confined, "openai").await.unwrap().unwrap();
    assert_eq!(found.secret.unwrap().expose_secret(), "sk-openai");
    assert_eq!(confined.list_active().await.unwrap().len(), 1);
    confined.health().await.unwrap();
    assert!(
        confined
            .reserve(&reference("openai"), "m1", Duration::from_secs(60))
            .await
            .unwrap()
    );

    let outside = VaultCredentialStore::builder(bao.address(), auth)
        .mount("kv")
        .prefix("payroll")
        .build()
        .unwrap();
    let err = find(&outside, "bank").await.unwrap_err();
    assert!(
        matches!(&err, Error::PermissionDenied { backend: "vault", detail } if detail.contains("payroll/bank")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(matches!(
        outside.put(credential("bank", "sk-forged")).await,
        Err(Error::PermissionDenied { .. })
    ));

    // A wrong secret id is a refused login, not a denial of the read.
    let (role_id, _) = bao.approle("agents", &["agents"], "1h", "4h").await;
    let wrong = agents_store(
        &bao,
        VaultAuth::app_role(role_id, Secret::new("not-the-secret-id")),
    );
    let err = find(&wrong, "openai").await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthenticated { detail, .. } if detail.contains("AppRole")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-secret-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_token_is_renewed_before_it_expires() {
    let bao = with_agents_policy().await;
    // Renewable, 3 s: without renewal it is dead after 3 s.
    let token = bao.create_token(&["agents"], "3s").await;
    let store = agents_store(&bao, VaultAuth::token(Secret::new(token)));
    keep_reading(&store, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_logs_in_again_past_the_maximum_ttl() {
    let bao = with_agents_policy().await;
    // Renewal alone cannot keep a token past 4 s; the reads go on for 8.
    let (role_id, secret_id) = bao.approle("short", &["agents"], "2s", "4s").await;
    let store = agents_store(&bao, VaultAuth::app_role(role_id, Secret::new(secret_id)));
    keep_reading(&store, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_approle_token_is_replaced_by_a_fresh_login() {
    let bao = with_agents_policy().await;
    let (role_id, secret_id) = bao.approle("agents", &["agents"], "1h", "4h").await;
    let store = agents_store(&bao, VaultAuth::app_role(role_id, Secret::new(secret_id)));
    assert!(find(&store, "openai").await.unwrap().is_some());
    bao.revoke_login_tokens("approle").await;
    assert!(find(&store, "openai").await.unwrap().is_some());
    store.health().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_fixed_token_is_unauthenticated_not_denied() {
    let bao = with_agents_policy().await;
    let token = bao.create_token(&["agents"], "1h").await;
    let store = agents_store(&bao, VaultAuth::token(Secret::new(token.clone())));
    assert!(find(&store, "openai").await.unwrap().is_some());
    bao.revoke_token(&token).await;
    let err = find(&store, "openai").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unauthenticated {
                backend: "vault",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        store.health().await,
        Err(Error::Unauthenticated { .. })
    ));
    assert!(!format!("{err} {err:?} {store:?}").contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reservations_across_two_replicas_have_one_winner() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let replicas = [
        root_store(&bao, "kv").build().unwrap(),
        root_store(&bao, "kv").build().unwrap(),
    ];
    let ids: Vec<String> = (0..50).map(|i| format!("migration-{i}")).collect();
    // Several rounds on fresh slots: a race between "absent" and the first write shows up as a
    // second winner only some of the time.
    let mut last = None;
    for round in 0..4 {
        let slot = reference(&format!("contended-{round}"));
        let attempts = ids
            .iter()
            .enumerate()
            .map(|(i, id)| replicas[i % 2].reserve(&slot, id, Duration::from_secs(60)));
        let results = futures::future::join_all(attempts).await;
        let winners: Vec<&String> = results
            .into_iter()
            .zip(&ids)
            .filter_map(|(won, id)| won.unwrap().then_some(id))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        last = Some((slot, winners[0].clone()));
    }
    let (slot, winner) = last.unwrap();
    let winners = [&winner];
    let loser = ids.iter().find(|id| *id != winners[0]).unwrap();
    assert!(matches!(
        replicas[1].release(&slot, loser).await,
        Err(Error::LeaseHeld { .. })
    ));
    // The holder renews, on either replica; then releases, and another may take it.
    assert!(
        replicas[1]
            .reserve(&slot, winners[0], Duration::from_secs(60))
            .await
            .unwrap()
    );
    replicas[0].release(&slot, winners[0]).await.unwrap();
    assert!(
        replicas[1]
            .reserve(&slot, loser, Duration::from_secs(60))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_unavailable_serves_the_cache_until_its_ttl_then_recovers() {
    let mut bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    // The read cache is the wrapper any store takes.
    let store = identity_cache::CachedStore::new(
        root_store(&bao, "kv")
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        identity_cache::CacheConfig::default().ttl(Duration::from_secs(2)),
    )
    .unwrap();
    store.put(credential("cached", "sk-cached")).await.unwrap();
    store
        .put(credential("uncached", "sk-uncached"))
        .await
        .unwrap();
    assert!(find(&store, "cached").await.unwrap().is_some());

    bao.stop().await;
    let served = find(&store, "cached").await.unwrap().unwrap();
    assert_eq!(served.secret.unwrap().expose_secret(), "sk-cached");
    let down = find(&store, "uncached").await.unwrap_err();
    assert!(
        matches!(
            down,
            Error::Unavailable {
                backend: "vault",
                ..
            }
        ),
        "{down:?}"
    );
    assert!(down.is_retryable());
    assert!(store.health().await.unwrap_err().is_retryable());
    assert!(store.list_active().await.unwrap_err().is_retryable());
    assert!(
        store
            .reserve(&reference("cached"), "m1", Duration::from_secs(5))
            .await
            .unwrap_err()
            .is_retryable()
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let expired = find(&store, "cached").await.unwrap_err();
    assert!(expired.is_retryable(), "{expired:?}");

    // Back (dev mode starts empty): the same store works again without being rebuilt.
    bao.restart().await;
    bao.enable_kv2("kv").await;
    store.health().await.unwrap();
    assert!(find(&store, "cached").await.unwrap().is_none());
    store
        .put(credential("cached", "sk-cached-2"))
        .await
        .unwrap();
    let back = find(&store, "cached").await.unwrap().unwrap();
    assert_eq!(back.secret.unwrap().expose_secret(), "sk-cached-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_refs_are_refused_before_any_request() {
    // A listener that only counts connections: no real server is needed to prove none is made.
    let (address, connections) = silent_listener().await;
    let store = VaultCredentialStore::builder(address, VaultAuth::token(Secret::new("s.token")))
        .build()
        .unwrap();
    for bad in [
        "../escape",
        "a/../../sys/policy/root",
        "%2e%2e/x",
        "a?version=1",
        "a#b",
        "./a",
        "a//b",
    ] {
        let r = reference(bad);
        let errors = [
            find(&store, bad).await.unwrap_err(),
            store.put(credential(bad, "sk")).await.unwrap_err(),
            store.delete(&r).await.unwrap_err(),
            store
                .reserve(&r, "m1", Duration::from_secs(5))
                .await
                .unwrap_err(),
            store.release(&r, "m1").await.unwrap_err(),
        ];
        for err in errors {
            assert!(
                matches!(
                    err,
                    Error::InvalidArgument {
                        argument: "credential ref",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
    }
    // A newline never makes a ref at all.
    assert!(CredentialRef::new("a\nb").is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_is_sent_and_confines_the_store_to_it() {
    let bao = OpenBao::start().await;
    bao.create_namespace("team-a").await;
    bao.enable_kv2_in(Some("team-a"), "kv").await;
    bao.ok_in(
        Some("team-a"),
        "POST",
        "kv/data/agents/openai",
        Some(
            json!({"data": {"id": "team-a-openai", "kind": "fixed", "status": "active",
            "ref": "openai", "secret": "sk-team-a"}}),
        ),
    )
    .await;
    let in_namespace = root_store(&bao, "kv").namespace("team-a").build().unwrap();
    let found = find(&in_namespace, "openai").await.unwrap().unwrap();
    assert_eq!(found.id, "team-a-openai");
    in_namespace
        .put(credential("written", "sk-w"))
        .await
        .unwrap();
    let (status, _) = bao
        .api_in(Some("team-a"), "GET", "kv/data/agents/written", None)
        .await;
    assert_eq!(status, 200);

    // The root namespace has no `kv` mount: a clear configuration error, not "no credential".
    let outside = root_store(&bao, "kv").build().unwrap();
    let err = find(&outside, "openai").await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(e) if e.field.as_deref() == Some("mount")),
        "{err:?}"
    );
    assert!(err.to_string().contains("agents/openai"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let bao = OpenBao::start_mutual_tls().await;
    let builder = || {
        VaultCredentialStore::builder(
            bao.mutual_tls_address(),
            VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)),
        )
        .ca_bundle(tls_fixture("ca.pem"))
    };
    let with_certificate = builder()
        .client_certificate(tls_fixture("client.pem"), tls_fixture("client-key.pem"))
        .build()
        .unwrap();
    with_certificate.health().await.unwrap();
    let without = builder().build().unwrap();
    let err = without.health().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    // Without the CA bundle the server's certificate is not trusted.
    let untrusted = VaultCredentialStore::builder(
        bao.mutual_tls_address(),
        VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)),
    )
    .client_certificate(tls_fixture("client.pem"), tls_fixture("client-key.pem"))
    .build()
    .unwrap();
    assert!(untrusted.health().await.unwrap_err().is_retryable());
    let missing = builder()
        .ca_bundle(tls_fixture("missing.pem"))
        .build()
        .unwrap_err();
    assert!(missing.to_string().contains("ca_bundle"), "{missing}");
    // A "key" file holding no private key is refused when the store is built.
    let err = builder()
        .client_certificate(tls_fixture("client.pem"), tls_fixture("ca.pem"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("client_certificate"), "{err}");
}

/// Nothing secret reaches the logs, even at `TRACE` with vaultrs's and reqwest's own targets on:
/// not the credential's secret, the AppRole secret id, nor the store's Vault token.
#[test]
fn no_secret_reaches_the_logs_at_any_level() {
    const SECRET: &str = "sk-canary-vault-6d1e";
    let logs = CapturedLogs::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (token, secret_id) = tracing::subscriber::with_default(logs.subscriber(), || {
        runtime.block_on(async {
            let bao = with_agents_policy().await;
            let (role_id, secret_id) = bao.approle("agents", &["agents"], "1h", "4h").await;
            let store = agents_store(
                &bao,
                VaultAuth::app_role(role_id, Secret::new(secret_id.clone())),
            );
            store.put(credential("canary", SECRET)).await.unwrap();
            let found = find(&store, "canary").await.unwrap().unwrap();
            assert_eq!(found.secret.unwrap().expose_secret(), SECRET);
            assert!(find(&store, "never-written").await.unwrap().is_none());
            store.list_active().await.unwrap();
            store
                .reserve(&reference("canary"), "m1", Duration::from_secs(5))
                .await
                .unwrap();
            // A store with a fixed token: its token must stay out of the logs as well.
            let token = bao.create_token(&["agents"], "1h").await;
            let by_token = agents_store(&bao, VaultAuth::token(Secret::new(token.clone())));
            assert!(find(&by_token, "canary").await.unwrap().is_some());
            (token, secret_id)
        })
    });
    let text = logs.text();
    assert!(
        text.contains("logged in to Vault"),
        "the capture works: {text}"
    );
    assert!(
        !text.contains(SECRET),
        "the credential's secret is in the logs"
    );
    assert!(
        !text.contains(&secret_id),
        "the AppRole secret id is in the logs"
    );
    assert!(!text.contains(&token), "the store's token is in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_server_is_unavailable_and_retryable() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let store = root_store(&bao, "kv").build().unwrap();
    store.put(credential("openai", "sk-openai")).await.unwrap();
    bao.ok("PUT", "sys/seal", None).await;
    let err = find(&store, "openai").await.unwrap_err();
    assert!(
        matches!(&err, Error::Unavailable { detail, .. } if detail.contains("sealed")),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(store.health().await.unwrap_err().is_retryable());
}
