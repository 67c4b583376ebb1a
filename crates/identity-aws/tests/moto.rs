//! `AwsSecretsManagerStore` against a real moto server (AWS's Secrets Manager API), one per test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use identity_aws::{AwsSecretsManagerStore, AwsStoreBuilder, KIND_TAG, STATUS_TAG};
use identity_core::testing::run_conformance;
use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStatus, CredentialStore, CredentialWriter,
    Error, Secret,
};
use identity_test_support::{
    CapturedLogs, MOTO_ACCESS_KEY_ID, MOTO_REGION, MOTO_SECRET_ACCESS_KEY, Moto, request_context,
    silent_listener,
};

mod common;
use common::sdk;

fn builder(endpoint: &str, prefix: &str) -> AwsStoreBuilder {
    AwsSecretsManagerStore::builder()
        .region(MOTO_REGION)
        .endpoint(endpoint)
        .static_credentials(MOTO_ACCESS_KEY_ID, Secret::new(MOTO_SECRET_ACCESS_KEY))
        .prefix(prefix)
}

fn credential(reference: &str, secret: &str) -> Credential {
    Credential::new(format!("id-{reference}"), CredentialKind::Fixed, reference)
        .unwrap()
        .with_scope("read")
        .with_secret(Secret::new(secret))
}

fn reference(text: &str) -> CredentialRef {
    CredentialRef::new(text).unwrap()
}

async fn find(store: &AwsSecretsManagerStore, r: &str) -> Result<Option<Credential>, Error> {
    store.find_by_ref(&reference(r), &request_context()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_cached_uncached_and_behind_arc_dyn() {
    let moto = Moto::start().await;
    let cached = builder(&moto.endpoint(), "cached/").build().unwrap();
    run_conformance(&cached, "cached").await;
    let uncached = builder(&moto.endpoint(), "uncached/").build().unwrap();
    run_conformance(&uncached, "uncached").await;
    let shared: Arc<dyn CredentialWriter> =
        Arc::new(builder(&moto.endpoint(), "arc-dyn/").build().unwrap());
    run_conformance(&shared, "arc-dyn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_holds_the_credential_json_and_tags_hold_what_listings_filter_on() {
    let moto = Moto::start().await;
    let store = builder(&moto.endpoint(), "agents/").build().unwrap();
    store
        .put(credential("openai", "sk-openai").with_provider("openai"))
        .await
        .unwrap();
    let sdk = sdk(&moto).await;
    let value = sdk
        .get_secret_value()
        .secret_id("agents/openai")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(body["ref"], "openai");
    assert_eq!(body["secret"], "sk-openai");
    let described = sdk
        .describe_secret()
        .secret_id("agents/openai")
        .send()
        .await
        .unwrap();
    let tag = |key: &str| {
        described
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    assert_eq!(tag(STATUS_TAG).as_deref(), Some("active"));
    assert_eq!(tag(KIND_TAG).as_deref(), Some("fixed"));
    assert_eq!(tag("agent-identity:provider").as_deref(), Some("openai"));

    // A status change moves the tag too.
    store
        .put(credential("openai", "sk-openai").with_status(CredentialStatus::Revoked))
        .await
        .unwrap();
    assert!(store.list_active().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_credentials_are_listed_across_pages_and_filtered_by_tags() {
    let moto = Moto::start().await;
    let store = builder(&moto.endpoint(), "fleet/").build().unwrap();
    let writes = (0..270).map(|i| {
        let store = store.clone();
        async move {
            let mut c = credential(&format!("slot-{i:03}"), &format!("sk-{i}"));
            if i >= 250 {
                c = c.with_status(CredentialStatus::Revoked);
            }
            if i % 2 == 1 {
                c.kind = CredentialKind::UserDelegated;
            }
            store.put(c).await
        }
    });
    let results: Vec<_> = futures::stream::iter(writes)
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(results.iter().all(Result::is_ok));
    // Secrets that are not this store's: another prefix, and one under the prefix without tags.
    let other = builder(&moto.endpoint(), "other/").build().unwrap();
    other.put(credential("slot-000", "sk-other")).await.unwrap();
    sdk(&moto)
        .await
        .create_secret()
        .name("fleet/untagged")
        .secret_string("{}")
        .send()
        .await
        .unwrap();

    let active = store.list_active().await.unwrap();
    assert_eq!(active.len(), 250);
    assert!(active.iter().all(|c| c.secret.is_none()));
    assert_eq!(active[0].reference.as_str(), "slot-000");
    assert_eq!(active[249].reference.as_str(), "slot-249");
    let delegated = store
        .list_by_kind(CredentialKind::UserDelegated)
        .await
        .unwrap();
    assert_eq!(delegated.len(), 135);
    assert!(
        delegated
            .iter()
            .all(|c| c.kind == CredentialKind::UserDelegated)
    );
    assert_eq!(store.count().await.unwrap(), 270);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_scheduled_for_deletion_is_not_found_and_a_put_restores_it() {
    let moto = Moto::start().await;
    let store = builder(&moto.endpoint(), "agents/").build().unwrap();
    store.put(credential("openai", "sk-1")).await.unwrap();
    // Scheduled by someone else, with a recovery window.
    sdk(&moto)
        .await
        .delete_secret()
        .secret_id("agents/openai")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert!(find(&store, "openai").await.unwrap().is_none());
    assert!(store.list_active().await.unwrap().is_empty());
    assert!(!store.delete(&reference("openai")).await.unwrap());
    store.put(credential("openai", "sk-2")).await.unwrap();
    let back = find(&store, "openai").await.unwrap().unwrap();
    assert_eq!(back.secret.unwrap().expose_secret(), "sk-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_credential_resolves_to_the_new_version_and_the_previous_stays_readable() {
    let moto = Moto::start().await;
    let store = builder(&moto.endpoint(), "agents/").build().unwrap();
    let slot = reference("openai");
    assert!(store.find_previous(&slot).await.unwrap().is_none());
    store.put(credential("openai", "sk-old")).await.unwrap();
    assert!(find(&store, "openai").await.unwrap().is_some()); // now cached
    store.rotate(&slot, Secret::new("sk-new")).await.unwrap();
    let current = find(&store, "openai").await.unwrap().unwrap();
    assert_eq!(current.secret.unwrap().expose_secret(), "sk-new");
    assert!(current.last_rotated.is_some());
    assert_eq!(current.scope, "read");
    let previous = store.find_previous(&slot).await.unwrap().unwrap();
    assert_eq!(previous.secret.unwrap().expose_secret(), "sk-old");
    let missing = store.rotate(&reference("nothing"), Secret::new("x")).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_typed_unavailable_errors_within_the_timeout() {
    let mut moto = Moto::start().await;
    let store = builder(&moto.endpoint(), "agents/")
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    store.put(credential("openai", "sk-1")).await.unwrap();
    moto.stop().await;
    let started = Instant::now();
    let err = find(&store, "openai").await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { backend: "aws", .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(store.list_active().await.unwrap_err().is_retryable());
    assert!(store.health().await.unwrap_err().is_retryable());
    assert!(
        store
            .put(credential("x", "y"))
            .await
            .unwrap_err()
            .is_retryable()
    );
    // Four calls, each bounded by the 2 s timeout, retries included.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    moto.restart().await;
    store.put(credential("openai", "sk-2")).await.unwrap();
    assert!(find(&store, "openai").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_is_cut_off_at_the_timeout() {
    // A hang is what moto cannot be made to do: a listener that accepts and never answers.
    let (endpoint, _) = silent_listener().await;
    let store = builder(&endpoint, "agents/")
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = find(&store, "openai").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_secrets_manager_cannot_name_are_refused_before_any_request() {
    let (endpoint, connections) = silent_listener().await;
    let store = builder(&endpoint, "agents/").build().unwrap();
    for bad in ["vault:openai/alice", "a b", "a?b", "%2e%2e", "café"] {
        let r = reference(bad);
        for err in [
            find(&store, bad).await.unwrap_err(),
            store.put(credential(bad, "sk")).await.unwrap_err(),
            store.delete(&r).await.unwrap_err(),
            store.rotate(&r, Secret::new("x")).await.unwrap_err(),
        ] {
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
    let lease = store
        .reserve(&reference("openai"), "m1", Duration::from_secs(60))
        .await;
    assert!(matches!(lease, Err(Error::NotSupported { .. })));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_that_are_not_credentials_are_refused_by_name() {
    let moto = Moto::start().await;
    let store = builder(&moto.endpoint(), "agents/").build().unwrap();
    let sdk = sdk(&moto).await;
    for (name, body) in [
        ("agents/plain", "sk-plain-canary"),
        ("agents/junk", r#"{"password":"sk-junk-canary"}"#),
    ] {
        sdk.create_secret()
            .name(name)
            .secret_string(body)
            .send()
            .await
            .unwrap();
    }
    for slot in ["plain", "junk"] {
        let err = find(&store, slot).await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            matches!(&err, Error::Protocol { code, .. } if code == "malformed_entry"),
            "{text}"
        );
        assert!(text.contains(slot) && !text.contains("canary"), "{text}");
    }
}

/// Nothing secret reaches the logs, even at `TRACE` with the SDK's own targets on: neither the
/// credential's secret nor the AWS secret access key.
#[test]
fn no_secret_reaches_the_logs_at_any_level() {
    const SECRET: &str = "sk-canary-aws-3f9b";
    const ACCESS_SECRET: &str = "aws-secret-access-key-canary";
    let logs = CapturedLogs::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(logs.subscriber(), || {
        runtime.block_on(async {
            let moto = Moto::start().await;
            let store = AwsSecretsManagerStore::builder()
                .region(MOTO_REGION)
                .endpoint(moto.endpoint())
                .static_credentials(MOTO_ACCESS_KEY_ID, Secret::new(ACCESS_SECRET))
                .prefix("agents/")
                .build()
                .unwrap();
            store.put(credential("canary", SECRET)).await.unwrap();
            let found = find(&store, "canary").await.unwrap().unwrap();
            assert_eq!(found.secret.unwrap().expose_secret(), SECRET);
            store.list_active().await.unwrap();
            store
                .rotate(&reference("canary"), Secret::new(SECRET))
                .await
                .unwrap();
            store.find_previous(&reference("canary")).await.unwrap();
        })
    });
    let text = logs.text();
    assert!(text.contains("GetSecretValue"), "the capture works: {text}");
    assert!(
        !text.contains(SECRET),
        "the credential's secret is in the logs"
    );
    assert!(
        !text.contains(ACCESS_SECRET),
        "the AWS secret key is in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_policy_that_allows_only_reads_gives_permission_denied_for_the_rest() {
    // Four requests without credentials set up a user who may only read secrets, and one
    // secret; from then on moto checks signatures and policies as AWS does.
    let moto = Moto::start_enforcing_iam(4).await;
    let iam = |params: Vec<(&'static str, String)>| {
        let moto = &moto;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            moto.unsigned_query("iam", &params).await
        }
    };
    iam(vec![
        ("Action", "CreateUser".into()),
        ("UserName", "reader".into()),
        ("Version", "2010-05-08".into()),
    ])
    .await;
    let keys = iam(vec![
        ("Action", "CreateAccessKey".into()),
        ("UserName", "reader".into()),
        ("Version", "2010-05-08".into()),
    ])
    .await;
    let between = |open: &str, close: &str| {
        let start = keys.find(open).unwrap() + open.len();
        keys[start..start + keys[start..].find(close).unwrap()].to_owned()
    };
    let (key_id, secret_key) = (
        between("<AccessKeyId>", "</AccessKeyId>"),
        between("<SecretAccessKey>", "</SecretAccessKey>"),
    );
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"}]});
    iam(vec![
        ("Action", "PutUserPolicy".into()),
        ("UserName", "reader".into()),
        ("PolicyName", "read-only".into()),
        ("PolicyDocument", policy.to_string()),
        ("Version", "2010-05-08".into()),
    ])
    .await;
    let mut entry = serde_json::to_value(credential("openai", "sk-openai")).unwrap();
    entry["secret"] = "sk-openai".into();
    moto.unsigned_json(
        "secretsmanager",
        "secretsmanager.CreateSecret",
        serde_json::json!({"Name": "agents/openai", "SecretString": entry.to_string()}),
    )
    .await;

    let reader = AwsSecretsManagerStore::builder()
        .region(MOTO_REGION)
        .endpoint(moto.endpoint())
        .static_credentials(key_id, Secret::new(secret_key))
        .prefix("agents/")
        .build()
        .unwrap();
    let found = find(&reader, "openai").await.unwrap().unwrap();
    assert_eq!(found.secret.unwrap().expose_secret(), "sk-openai");
    let denied = reader
        .put(credential("openai", "sk-forged"))
        .await
        .unwrap_err();
    assert!(
        matches!(denied, Error::PermissionDenied { backend: "aws", .. }),
        "{denied:?}"
    );
    assert!(!denied.is_retryable());
    let listing = reader.list_active().await.unwrap_err();
    assert!(
        matches!(listing, Error::PermissionDenied { .. }),
        "{listing:?}"
    );
}
