//! Two replicas sharing a real Redis: what one revokes, the other refuses as soon as the call
//! returns; a replica that cannot read the list stops serving.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use identity_core::{
    Credential, CredentialKind, OffsetDateTime, RequestContext, ResourceKind, RoutingRule, Secret,
};
use identity_memory::MemoryCredentialStore;
use identity_redis::Redis;
use identity_revocation::{Revocation, RevocationSettings, Revocations};
use identity_router::Router;
use identity_state::SharedState;
use identity_test_support::RedisServer;

fn settings() -> RevocationSettings {
    RevocationSettings::new(Duration::from_millis(100), Duration::from_millis(400))
}

fn state(redis: &RedisServer) -> Arc<dyn SharedState> {
    let redis = Redis::open(
        &redis.url(),
        None,
        None,
        None,
        "test",
        Duration::from_secs(1),
    )
    .unwrap();
    Arc::new(redis.state("revocations").unwrap())
}

fn store() -> MemoryCredentialStore {
    let store = MemoryCredentialStore::new();
    store.insert(
        Credential::new("cred-shared", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk-shared")),
    );
    store.insert(
        Credential::new("cred-alice", CredentialKind::UserDelegated, "github-alice")
            .unwrap()
            .with_provider("github")
            .with_secret(Secret::new("gho-alice-token")),
    );
    store
}

fn replica(revocations: &Revocations) -> Router {
    Router::builder()
        .default_store(store())
        .gate(revocations.clone())
        .rule(
            RoutingRule::new("github", "github-alice")
                .with_priority(2)
                .with_match_provider("github"),
        )
        .rule(RoutingRule::new("llm", "openai").with_priority(1))
        .build()
        .unwrap()
}

fn ctx(provider: &str) -> RequestContext {
    RequestContext::builder()
        .user_id("alice")
        .resource_id("repo")
        .resource_kind(ResourceKind::Personal)
        .provider(provider)
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_replica_revokes_no_replica_serves_once_the_call_returns() {
    let redis = RedisServer::start().await;
    let a = Revocations::start(state(&redis), settings()).await.unwrap();
    let b = Revocations::start(state(&redis), settings()).await.unwrap();
    let (router_a, router_b) = (replica(&a), replica(&b));
    for router in [&router_a, &router_b] {
        assert!(router.resolve(&ctx("openai")).await.is_ok());
        assert!(router.resolve(&ctx("github")).await.is_ok());
    }

    let record = a
        .revoke(
            Revocation::credential("cred-shared")
                .by("security")
                .because("leaked"),
        )
        .await
        .unwrap();
    assert_eq!(record.by.as_deref(), Some("security"));
    // Right after the call, on the other replica too.
    for router in [&router_a, &router_b] {
        let denial = router.resolve(&ctx("openai")).await.unwrap_err();
        assert_eq!(denial.reason.code(), "credential_not_active");
        assert!(router.resolve(&ctx("github")).await.is_ok());
    }

    // A user's token, revoked by its value (as after a disconnect whose copies may be cached).
    let until = OffsetDateTime::now_utc() + time::Duration::hours(1);
    b.revoke(Revocation::secret(&Secret::new("gho-alice-token")).until(until))
        .await
        .unwrap();
    for router in [&router_a, &router_b] {
        let denial = router.resolve(&ctx("github")).await.unwrap_err();
        assert_eq!(denial.reason.code(), "consent_required");
    }
    // Both entries are in the shared list, the secret only as its digest.
    let list = a.list();
    assert_eq!(list.len(), 2);
    assert!(!format!("{:?}", list.entries()).contains("gho-alice-token"));
    // Revoking again keeps the first record.
    let again = b
        .revoke(Revocation::credential("cred-shared").by("someone-else"))
        .await
        .unwrap();
    assert_eq!(again.by.as_deref(), Some("security"));
    assert_eq!(b.list().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_read_the_list_stops_serving() {
    let mut redis = RedisServer::start().await;
    let revocations = Revocations::start(state(&redis), settings()).await.unwrap();
    let router = replica(&revocations);
    assert!(router.resolve(&ctx("openai")).await.is_ok());
    redis.stop().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let denial = router.resolve(&ctx("openai")).await.unwrap_err();
    assert_eq!(denial.reason.code(), "store_unavailable");
    assert!(denial.to_string().contains("revocation list"), "{denial}");
    // A replica that can read the list serves (the refusal was the staleness, nothing else).
    let redis = RedisServer::start().await;
    let fresh = Revocations::start(state(&redis), settings()).await.unwrap();
    assert!(replica(&fresh).resolve(&ctx("openai")).await.is_ok());
}

#[tokio::test]
async fn an_expired_revocation_is_dropped_at_the_next_write_and_a_bad_list_is_an_error() {
    let state: Arc<dyn SharedState> = Arc::new(identity_state::MemoryState::default());
    let revocations = Revocations::start(state.clone(), settings()).await.unwrap();
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    revocations
        .revoke(Revocation::credential("old").until(past))
        .await
        .unwrap();
    revocations
        .revoke(Revocation::credential("new"))
        .await
        .unwrap();
    let list = revocations.list();
    assert!(!list.has_credential("old"));
    assert!(list.has_credential("new"));

    let (_, version) = state
        .read(identity_revocation::LIST_KEY)
        .await
        .unwrap()
        .unwrap();
    state
        .write_if(
            identity_revocation::LIST_KEY,
            &serde_json::json!({"entries": [{"at": 1}]}),
            Some(version),
        )
        .await
        .unwrap();
    let err = revocations.refresh().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("neither one credential nor one secret"),
        "{err}"
    );
}
