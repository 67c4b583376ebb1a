//! Shared state against a real Redis server (Debian's `redis-server`, started per test).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use identity_core::Error;
use identity_redis::RedisConfig;
use identity_state::SharedState;
use identity_test_support::RedisServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_state_passes_the_shared_state_conformance_suite() {
    let server = RedisServer::start().await;
    let redis = RedisConfig::new(server.url())
        .connect("redis", &|_| None)
        .unwrap();
    identity_state::testing::run_shared_state_conformance(&redis.state("one").unwrap(), "one")
        .await;
    // Behind the trait object, from a second client (another replica).
    let other = RedisConfig::new(server.url())
        .connect("redis", &|_| None)
        .unwrap();
    let shared: Arc<dyn SharedState> = Arc::new(other.state("one").unwrap());
    identity_state::testing::run_shared_state_conformance(shared.as_ref(), "two").await;
}

#[tokio::test]
async fn namespaces_and_prefixes_keep_apart() {
    let server = RedisServer::start().await;
    let redis = RedisConfig::new(server.url())
        .connect("redis", &|_| None)
        .unwrap();
    let mut other_config = RedisConfig::new(server.url());
    other_config.prefix = "other-deployment".into();
    let other_deployment = other_config.connect("redis", &|_| None).unwrap();
    let clients = redis.state("clients").unwrap();
    let connections = redis.state("connections").unwrap();
    let theirs = other_deployment.state("clients").unwrap();
    clients
        .write_if("k", &json!({"a": 1}), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connections.read("k").await.unwrap(), None);
    assert_eq!(theirs.read("k").await.unwrap(), None);
    assert!(theirs.list("").await.unwrap().is_empty());
    assert!(
        theirs
            .try_lease("k", "x", Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        clients
            .try_lease("k", "y", Duration::from_secs(5))
            .await
            .unwrap()
    );
    // The layout an operator sees: a hash per document, under the prefix and namespace.
    let raw = server
        .command(&["HGET", "agent-identity:{clients}:d:k", "d"])
        .await
        .unwrap();
    assert!(raw.contains(r#"{"a":1}"#), "{raw}");
    let ttl = server
        .command(&["PTTL", "agent-identity:{clients}:l:k"])
        .await
        .unwrap();
    let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 5000, "{ttl}");
}

#[tokio::test]
async fn an_acl_user_authenticates_and_a_wrong_password_is_unauthenticated() {
    let server = RedisServer::start_with_password("default-secret").await;
    let acl = server
        .command(&[
            "ACL",
            "SETUSER",
            "agent",
            "on",
            ">agent-secret",
            "~agent-identity:*",
            "+@all",
        ])
        .await
        .unwrap();
    assert!(acl.starts_with("+OK"), "{acl}");
    let mut config = RedisConfig::new(server.url());
    config.username = Some("agent".into());
    config.password_env = Some("REDIS_PASSWORD".into());
    let good = config
        .connect("redis", &|_| Some("agent-secret".into()))
        .unwrap();
    let state = good.state("s").unwrap();
    state
        .write_if("k", &json!({}), None)
        .await
        .unwrap()
        .unwrap();
    good.ping().await.unwrap();

    let wrong = config
        .connect("redis", &|_| Some("not-the-password".into()))
        .unwrap();
    let err = wrong.state("s").unwrap().read("k").await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");

    // The user's keys are its prefix's only.
    config.prefix = "elsewhere".into();
    let outside = config
        .connect("redis", &|_| Some("agent-secret".into()))
        .unwrap();
    let err = outside.state("s").unwrap().read("k").await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    // Debug shows no password.
    assert!(!format!("{good:?}").contains("agent-secret"));
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_in_time_and_then_recovers() {
    let mut server = RedisServer::start().await;
    let port = server.port();
    let mut config = RedisConfig::new(server.url());
    config.timeout_ms = 500;
    let redis = config.connect("redis", &|_| None).unwrap();
    let state = redis.state("s").unwrap();
    state
        .write_if("k", &json!({"n": 1}), None)
        .await
        .unwrap()
        .unwrap();
    server.stop().await;
    let started = std::time::Instant::now();
    let err = state.read("k").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    // (the timeout is half a second; ten leave a loaded machine its slack)
    assert!(started.elapsed() < Duration::from_secs(10));
    // A new server on the same port: the connection comes back by itself (empty: no
    // persistence in these servers).
    let _again = RedisServer::start_on(port).await;
    let mut back = None;
    for _ in 0..50 {
        match state.read("k").await {
            Ok(read) => {
                back = Some(read);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(back, Some(None));
}

#[tokio::test]
async fn rediss_verifies_the_server_against_the_configured_ca() {
    let server = RedisServer::start_tls().await;
    let mut config = RedisConfig::new(server.tls_url());
    config.tls_ca_file = Some(identity_test_support::tls_fixture("ca.pem"));
    let redis = config.connect("redis", &|_| None).unwrap();
    let state = redis.state("s").unwrap();
    state
        .write_if("k", &json!({"over": "tls"}), None)
        .await
        .unwrap()
        .unwrap();
    // What went over TLS is there, seen through the plain port.
    let raw = server
        .command(&["HGET", "agent-identity:{s}:d:k", "d"])
        .await
        .unwrap();
    assert!(raw.contains("tls"), "{raw}");

    // Trusting another CA (the system's roots, which never signed the test certificate), the
    // connection is refused.
    let untrusted = RedisConfig::new(server.tls_url())
        .connect("redis", &|_| None)
        .unwrap();
    let err = untrusted.state("s").unwrap().read("k").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}

/// One operation of a generated sequence, on a small set of keys so that they collide.
#[derive(Debug, Clone)]
enum Op {
    Read(u8),
    /// Write `value` at a key, expecting what was last read there, absence, or a stale version.
    Write(u8, u8, Expect),
    Delete(u8),
    List,
    Lease(u8, u8),
    Release(u8, u8),
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Current,
    Absent,
    Stale,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let expect = prop_oneof![
        Just(Expect::Current),
        Just(Expect::Absent),
        Just(Expect::Stale)
    ];
    prop_oneof![
        (0..4u8).prop_map(Op::Read),
        (0..4u8, any::<u8>(), expect).prop_map(|(k, v, e)| Op::Write(k, v, e)),
        (0..4u8).prop_map(Op::Delete),
        Just(Op::List),
        (0..2u8, 0..3u8).prop_map(|(k, h)| Op::Lease(k, h)),
        (0..2u8, 0..3u8).prop_map(|(k, h)| Op::Release(k, h)),
    ]
}

/// What an operation gave, without versions (each backend numbers its own).
async fn apply(
    state: &dyn SharedState,
    op: &Op,
    versions: &mut std::collections::HashMap<u8, u64>,
) -> String {
    let key = |k: &u8| {
        format!(
            "f/{}/k{k}",
            if k.is_multiple_of(2) { "even" } else { "odd" }
        )
    };
    match op {
        Op::Read(k) => {
            let read = state.read(&key(k)).await.unwrap();
            if let Some((_, version)) = &read {
                versions.insert(*k, *version);
            }
            format!("{:?}", read.map(|(document, _)| document))
        }
        Op::Write(k, value, expect) => {
            let expected = match expect {
                Expect::Current => state
                    .read(&key(k))
                    .await
                    .unwrap()
                    .map(|(_, version)| version),
                Expect::Absent => None,
                Expect::Stale => versions.get(k).copied().or(Some(0)),
            };
            let written = state
                .write_if(&key(k), &json!({"v": value}), expected)
                .await
                .unwrap();
            if let Some(version) = written {
                versions.insert(*k, version);
            }
            format!("{}", written.is_some())
        }
        Op::Delete(k) => {
            state.delete(&key(k)).await.unwrap();
            "deleted".into()
        }
        Op::List => format!(
            "{:?} {:?}",
            state.list("f").await.unwrap(),
            state.list("f/even").await.unwrap()
        ),
        Op::Lease(k, holder) => format!(
            "{}",
            state
                .try_lease(
                    &format!("l/{k}"),
                    &format!("h{holder}"),
                    Duration::from_secs(60)
                )
                .await
                .unwrap()
        ),
        Op::Release(k, holder) => {
            state
                .release(&format!("l/{k}"), &format!("h{holder}"))
                .await
                .unwrap();
            "released".into()
        }
    }
}

#[test]
fn redis_and_memory_agree_on_every_sequence_of_operations() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(RedisServer::start());
    let redis = runtime.block_on(async {
        RedisConfig::new(server.url())
            .connect("redis", &|_| None)
            .unwrap()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..24))| {
        // A namespace per case: each starts from nothing, as a fresh memory state does.
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let redis = redis.state(&format!("case-{n}")).unwrap();
        let memory = identity_state::MemoryState::default();
        runtime.block_on(async {
            let (mut in_redis, mut in_memory) = (Default::default(), Default::default());
            for op in &ops {
                let from_redis = apply(&redis, op, &mut in_redis).await;
                let from_memory = apply(&memory, op, &mut in_memory).await;
                assert_eq!(from_redis, from_memory, "{op:?} in {ops:?}");
            }
        });
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_with_a_password_a_failover_moves_commands_to_the_new_master() {
    let mut master = RedisServer::start().await;
    let replica = RedisServer::start_replica_of(&master).await;
    let dir = std::env::temp_dir().join(format!("identity-redis-sentinel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The sentinel asks its own clients for a password.
    let sentinel =
        RedisServer::start_sentinel_with_password(&master, "main", &dir, Some("sentinel-pw")).await;
    // The sentinel has found the replica, and the replica follows the master.
    let known = format!("127.0.0.1:{}", replica.port());
    for _ in 0..100 {
        let replicas = sentinel
            .command(&["SENTINEL", "replicas", "main"])
            .await
            .unwrap();
        let synced = replica.command(&["INFO", "replication"]).await.unwrap();
        if replicas.contains(&known) && synced.contains("master_link_status:up") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut config = RedisConfig::new("");
    config.url = None;
    config.sentinels = vec![sentinel.url()];
    config.master_name = Some("main".into());
    config.timeout_ms = 500;
    // Without the sentinel's password, the master cannot be found: a typed error says so.
    let refused = config
        .connect("redis", &|_| None)
        .unwrap()
        .state("s")
        .unwrap();
    let err = refused.read("before").await.unwrap_err();
    assert!(
        matches!(err, identity_core::Error::Unauthenticated { .. }),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("sentinel-pw"));
    config.sentinel_password_env = Some("SENTINEL_PASSWORD".into());
    let redis = config
        .connect("redis", &|name| {
            (name == "SENTINEL_PASSWORD").then(|| "sentinel-pw".into())
        })
        .unwrap();
    let state = redis.state("s").unwrap();
    state
        .write_if("before", &json!({"n": 1}), None)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..100 {
        let there = replica
            .command(&["EXISTS", "agent-identity:{s}:d:before"])
            .await
            .unwrap();
        if there.starts_with(":1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The master dies; the sentinel promotes the replica; commands follow it.
    master.stop().await;
    let mut written = None;
    for _ in 0..100 {
        if let Ok(Some(version)) = state.write_if("after", &json!({"n": 2}), None).await {
            written = Some(version);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(written.is_some(), "no write reached a new master");
    assert!(state.read("before").await.unwrap().is_some());
    let promoted = sentinel
        .command(&["SENTINEL", "get-master-addr-by-name", "main"])
        .await
        .unwrap();
    assert!(promoted.contains(&replica.port().to_string()), "{promoted}");
    let role = replica.command(&["ROLE"]).await.unwrap();
    assert!(role.contains("master"), "{role}");
    std::fs::remove_dir_all(&dir).unwrap();
}
