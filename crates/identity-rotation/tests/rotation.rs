//! Rotation through real stores: after N uses the next resolution gets the new version, the
//! previous one resolves until its grace window ends and is then retired; replicas rotate once;
//! a rotation by age is announced before it is due.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, CredentialWriter, Error,
    OffsetDateTime, RoutingRule, Secret, async_trait,
};
use identity_memory::MemoryCredentialStore;
use identity_rotation::{
    RotatingStore, RotationNotice, RotationObserver, RotationPolicy, SecretIssuer,
};
use identity_router::Router;
use identity_state::{MemoryState, SharedState};
use identity_test_support::{BAO_ROOT_TOKEN, OpenBao, request_context};

/// An upstream that counts the keys it issues and the ones it revokes.
#[derive(Debug, Default)]
struct Upstream {
    issued: AtomicUsize,
    retired: Mutex<Vec<String>>,
}

#[async_trait]
impl SecretIssuer for Upstream {
    async fn issue(&self, current: &Credential) -> Result<Secret, Error> {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        // Slow enough that concurrent resolutions find the rotation under way.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Secret::new(format!("sk-after-{}-{n}", current.id)))
    }

    async fn retire(&self, retired: &Credential) -> Result<(), Error> {
        self.retired.lock().unwrap().push(retired.id.clone());
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Told(Mutex<Vec<RotationNotice>>);

impl RotationObserver for Told {
    fn notify(&self, notice: &RotationNotice) {
        self.0.lock().unwrap().push(notice.clone());
    }
}

fn slot() -> CredentialRef {
    CredentialRef::new("openai").unwrap()
}

fn memory_with_key() -> Arc<MemoryCredentialStore> {
    let store = MemoryCredentialStore::new();
    store.insert(
        Credential::new("openai-v1", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk-first")),
    );
    Arc::new(store)
}

/// A clock the test moves.
fn clock() -> (
    Arc<AtomicI64>,
    impl Fn() -> OffsetDateTime + Send + Sync + 'static,
) {
    let now = Arc::new(AtomicI64::new(OffsetDateTime::now_utc().unix_timestamp()));
    let read = now.clone();
    (now, move || {
        OffsetDateTime::from_unix_timestamp(read.load(Ordering::SeqCst)).unwrap()
    })
}

async fn secret_of(store: &dyn CredentialStore, reference: &CredentialRef) -> Option<String> {
    store
        .find_by_ref(reference, &request_context())
        .await
        .unwrap()
        .and_then(|c| c.secret.map(|s| s.expose_secret().to_owned()))
}

#[tokio::test]
async fn after_n_uses_the_next_resolution_gets_the_new_version_and_the_old_one_lasts_its_grace() {
    let backing = memory_with_key();
    let upstream = Arc::new(Upstream::default());
    let told = Arc::new(Told::default());
    let (now, clock) = clock();
    let store = RotatingStore::new(
        backing.clone(),
        Arc::new(MemoryState::default()),
        upstream.clone(),
        RotationPolicy::after_uses(3).with_grace(Duration::from_secs(600)),
    )
    .unwrap()
    .with_observer(told.clone())
    .with_clock(clock);
    let router = Router::builder()
        .default_store(store)
        .rule(RoutingRule::new("llm", "openai").with_priority(2))
        .rule(
            RoutingRule::new("llm-previous", "openai@previous")
                .with_priority(3)
                .with_match_action(["previous"]),
        )
        .build()
        .unwrap();
    let ctx = request_context();
    for _ in 0..3 {
        let resolution = router.resolve(&ctx).await.unwrap();
        assert_eq!(resolution.credential_id, "openai-v1");
        assert_eq!(resolution.secret().unwrap().expose_secret(), "sk-first");
    }
    let fourth = router.resolve(&ctx).await.unwrap();
    assert_eq!(fourth.credential_id, "openai-v2");
    assert_eq!(
        fourth.secret().unwrap().expose_secret(),
        "sk-after-openai-v1-1"
    );
    // Written through the store: the backing store holds the new version.
    assert_eq!(
        secret_of(&*backing, &slot()).await.unwrap(),
        "sk-after-openai-v1-1"
    );
    assert_eq!(upstream.issued.load(Ordering::SeqCst), 1);

    // The previous version resolves until its grace window ends.
    let previous_ctx = identity_core::RequestContext::builder()
        .user_id("alice")
        .resource_id("docs")
        .resource_kind(identity_core::ResourceKind::Shared)
        .provider("openai")
        .model("gpt-4o")
        .action("previous")
        .trace_id("t2")
        .build()
        .unwrap();
    let previous = router.resolve(&previous_ctx).await.unwrap();
    assert_eq!(previous.credential_id, "openai-v1");
    assert_eq!(previous.secret().unwrap().expose_secret(), "sk-first");
    now.fetch_add(601, Ordering::SeqCst);
    let _ = router.resolve(&ctx).await.unwrap();
    assert!(router.resolve(&previous_ctx).await.is_err());
    assert_eq!(*upstream.retired.lock().unwrap(), ["openai-v1"]);
    assert!(
        backing
            .find_by_ref(&CredentialRef::new("openai@previous").unwrap(), &ctx)
            .await
            .unwrap()
            .is_none()
    );
    let told = told.0.lock().unwrap();
    assert!(
        matches!(&told[0], RotationNotice::Rotated { from, to, .. } if from == "openai-v1" && to == "openai-v2")
    );
    assert!(
        matches!(&told[1], RotationNotice::Retired { credential_id, .. } if credential_id == "openai-v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_resolving_at_once_rotate_once() {
    let backing = memory_with_key();
    let state: Arc<dyn SharedState> = Arc::new(MemoryState::default());
    let upstream = Arc::new(Upstream::default());
    let replica = || {
        Arc::new(
            RotatingStore::new(
                backing.clone(),
                state.clone(),
                upstream.clone(),
                RotationPolicy::after_uses(10),
            )
            .unwrap(),
        )
    };
    let (a, b) = (replica(), replica());
    let calls = (0..16).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            store
                .find_by_ref(&slot(), &request_context())
                .await
                .unwrap()
                .unwrap()
        }
    });
    let seen = futures::future::join_all(calls).await;
    assert_eq!(upstream.issued.load(Ordering::SeqCst), 1, "one rotation");
    // The first ten uses are the old version's; the use that rotated gets the new one; uses
    // that found it due while the rotation was under way get the old one, valid in its grace.
    let old = seen.iter().filter(|c| c.id == "openai-v1").count();
    let new = seen.iter().filter(|c| c.id == "openai-v2").count();
    assert!(old >= 10, "{old} uses of the old version");
    assert!(new >= 1, "the rotating use gets the new version");
    assert_eq!(old + new, 16);
    assert_eq!(
        a.find_by_ref(&slot(), &request_context())
            .await
            .unwrap()
            .unwrap()
            .id,
        "openai-v2"
    );
}

#[tokio::test]
async fn a_rotation_by_age_is_announced_once_then_made_when_due() {
    let backing = memory_with_key();
    let upstream = Arc::new(Upstream::default());
    let told = Arc::new(Told::default());
    let (now, clock) = clock();
    let store = RotatingStore::new(
        backing,
        Arc::new(MemoryState::default()),
        upstream.clone(),
        RotationPolicy::after_days(30).with_notice(Duration::from_secs(86_400)),
    )
    .unwrap()
    .with_observer(told.clone())
    .with_clock(clock);
    assert_eq!(secret_of(&store, &slot()).await.unwrap(), "sk-first");
    now.fetch_add(29 * 86_400 + 3600, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(secret_of(&store, &slot()).await.unwrap(), "sk-first");
    }
    {
        let told = told.0.lock().unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(matches!(told[0], RotationNotice::DueSoon { .. }));
    }
    now.fetch_add(86_400, Ordering::SeqCst);
    assert_eq!(
        secret_of(&store, &slot()).await.unwrap(),
        "sk-after-openai-v1-1"
    );
    assert_eq!(upstream.issued.load(Ordering::SeqCst), 1);
    assert!(RotationPolicy::after(Duration::ZERO).check().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_writes_the_new_version_through_vault() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let vault = identity_vault::VaultCredentialStore::builder(
        bao.address(),
        identity_vault::VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)),
    )
    .mount("kv")
    .build()
    .unwrap();
    vault
        .put(
            Credential::new("openai-v1", CredentialKind::Fixed, "openai")
                .unwrap()
                .with_secret(Secret::new("sk-first")),
        )
        .await
        .unwrap();
    let state: Arc<dyn SharedState> = Arc::new(vault.documents("agent-identity-rotation").unwrap());
    let store = RotatingStore::new(
        vault,
        state,
        Arc::new(Upstream::default()),
        RotationPolicy::after_uses(1),
    )
    .unwrap();
    assert_eq!(secret_of(&store, &slot()).await.unwrap(), "sk-first");
    assert_eq!(
        secret_of(&store, &slot()).await.unwrap(),
        "sk-after-openai-v1-1"
    );
    // In Vault: the slot's entry is the new version (KV version 2), the previous one beside it.
    let entry = bao.ok("GET", "kv/data/agent-identity/openai", None).await;
    assert_eq!(entry["data"]["metadata"]["version"], 2);
    assert_eq!(entry["data"]["data"]["id"], "openai-v2");
    let previous = bao
        .ok("GET", "kv/data/agent-identity/openai@previous", None)
        .await;
    assert_eq!(previous["data"]["data"]["id"], "openai-v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_through_aws_keeps_the_previous_version_as_awsprevious() {
    use identity_test_support::{MOTO_ACCESS_KEY_ID, MOTO_REGION, MOTO_SECRET_ACCESS_KEY, Moto};
    let moto = Moto::start().await;
    let aws = identity_aws::AwsSecretsManagerStore::builder()
        .region(MOTO_REGION)
        .endpoint(moto.endpoint())
        .static_credentials(MOTO_ACCESS_KEY_ID, Secret::new(MOTO_SECRET_ACCESS_KEY))
        .build()
        .unwrap();
    aws.put(
        Credential::new("openai-v1", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk-first")),
    )
    .await
    .unwrap();
    let aws = Arc::new(aws);
    let store = RotatingStore::new(
        aws.clone(),
        Arc::new(MemoryState::default()),
        Arc::new(Upstream::default()),
        RotationPolicy::after_uses(1),
    )
    .unwrap();
    assert_eq!(secret_of(&store, &slot()).await.unwrap(), "sk-first");
    assert_eq!(
        secret_of(&store, &slot()).await.unwrap(),
        "sk-after-openai-v1-1"
    );
    // Secrets Manager's own versions: the new one current, the one before it AWSPREVIOUS.
    let previous = aws.find_previous(&slot()).await.unwrap().unwrap();
    assert_eq!(previous.id, "openai-v1");
    assert_eq!(previous.secret.unwrap().expose_secret(), "sk-first");
}
