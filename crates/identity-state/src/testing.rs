//! The conformance suite every [`SharedState`] passes (feature `testing`): memory, Vault and
//! Redis run it alike, so that the connections, clients and approvals kept on top can rely on
//! the same check-and-set and lease rules whatever the backend.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! identity_state::testing::run_shared_state_conformance(&identity_state::MemoryState::default(), "doc").await;
//! # });
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a conformance suite fails by panicking, as a test does"
)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::SharedState;

/// Runs every check below against `state`; `namespace` (a key segment) keeps this run's keys
/// apart from other runs sharing the backend.
pub async fn run_shared_state_conformance(state: &dyn SharedState, namespace: &str) {
    documents_round_trip(state, namespace).await;
    writes_compare_and_set(state, namespace).await;
    versions_are_not_reused_after_a_delete(state, namespace).await;
    lists_are_recursive_sorted_and_bounded(state, namespace).await;
    bad_keys_are_refused(state, namespace).await;
    leases_have_one_holder(state, namespace).await;
    leases_lapse(state, namespace).await;
    concurrent_writes_have_one_winner(state, namespace).await;
    concurrent_leases_have_one_winner(state, namespace).await;
}

/// What is written is what is read, with the version the write gave (integers up to 2^53:
/// see [`SharedState`]).
pub async fn documents_round_trip(state: &dyn SharedState, namespace: &str) {
    let key = format!("{namespace}/round/trip");
    assert_eq!(state.read(&key).await.unwrap(), None);
    let document = json!({"text": "héllo \"quoted\"", "n": 9_007_199_254_740_993i64 - 1, "negative": -2.5, "list": [1, null, true], "nested": {"a": {}}});
    let version = state
        .write_if(&key, &document, None)
        .await
        .unwrap()
        .expect("the first write of an absent document");
    assert_eq!(state.read(&key).await.unwrap(), Some((document, version)));
}

/// A write succeeds only on the version read: `None` for an absent document.
pub async fn writes_compare_and_set(state: &dyn SharedState, namespace: &str) {
    let key = format!("{namespace}/cas/doc");
    let first = state
        .write_if(&key, &json!({"v": 1}), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        state.write_if(&key, &json!({"v": 2}), None).await.unwrap(),
        None
    );
    assert_eq!(
        state
            .write_if(&key, &json!({"v": 2}), Some(first + 1000))
            .await
            .unwrap(),
        None
    );
    let second = state
        .write_if(&key, &json!({"v": 2}), Some(first))
        .await
        .unwrap()
        .expect("a write on the version read");
    assert_ne!(first, second);
    assert_eq!(
        state
            .write_if(&key, &json!({"v": 3}), Some(first))
            .await
            .unwrap(),
        None,
        "a stale version must lose"
    );
    assert_eq!(
        state.read(&key).await.unwrap(),
        Some((json!({"v": 2}), second))
    );
    // A version given for an absent document loses too.
    let absent = format!("{namespace}/cas/absent");
    assert_eq!(
        state
            .write_if(&absent, &json!({"v": 1}), Some(first))
            .await
            .unwrap(),
        None
    );
    assert_eq!(state.read(&absent).await.unwrap(), None);
}

/// A document deleted and written again has a new version: the writer that read the old one
/// cannot overwrite it.
pub async fn versions_are_not_reused_after_a_delete(state: &dyn SharedState, namespace: &str) {
    let key = format!("{namespace}/aba/doc");
    let old = state
        .write_if(&key, &json!({"v": "old"}), None)
        .await
        .unwrap()
        .unwrap();
    state.delete(&key).await.unwrap();
    assert_eq!(state.read(&key).await.unwrap(), None);
    // Deleting what is gone is no error.
    state.delete(&key).await.unwrap();
    let new = state
        .write_if(&key, &json!({"v": "new"}), None)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(old, new);
    assert_eq!(
        state
            .write_if(&key, &json!({"v": "stale"}), Some(old))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        state.read(&key).await.unwrap(),
        Some((json!({"v": "new"}), new))
    );
}

/// A listing holds every key under its folder, however deep, sorted, and nothing beside it.
pub async fn lists_are_recursive_sorted_and_bounded(state: &dyn SharedState, namespace: &str) {
    let folder = format!("{namespace}/listed");
    let keys = [
        format!("{folder}/b"),
        format!("{folder}/a/deep/er"),
        format!("{folder}/a/x"),
    ];
    for key in &keys {
        state
            .write_if(key, &json!({}), None)
            .await
            .unwrap()
            .unwrap();
    }
    // Beside the folder, with its name as a prefix: not in it.
    state
        .write_if(&format!("{folder}x/c"), &json!({}), None)
        .await
        .unwrap()
        .unwrap();
    let mut expected: Vec<String> = keys.to_vec();
    expected.sort();
    assert_eq!(state.list(&folder).await.unwrap(), expected);
    assert_eq!(state.list(&format!("/{folder}/")).await.unwrap(), expected);
    assert_eq!(
        state.list(&format!("{folder}/a")).await.unwrap(),
        vec![format!("{folder}/a/deep/er"), format!("{folder}/a/x")]
    );
    assert!(
        state
            .list(&format!("{namespace}/none"))
            .await
            .unwrap()
            .is_empty()
    );
    let everything: BTreeSet<String> = state.list("").await.unwrap().into_iter().collect();
    assert!(keys.iter().all(|key| everything.contains(key)));
    state.delete(&keys[0]).await.unwrap();
    assert!(!state.list(&folder).await.unwrap().contains(&keys[0]));
}

/// Keys that could leave their place are refused before any request, saying why.
pub async fn bad_keys_are_refused(state: &dyn SharedState, namespace: &str) {
    for key in [
        format!("{namespace}/../x"),
        format!("{namespace}//x"),
        format!("{namespace}/x*"),
        format!("{namespace}/a b"),
        String::new(),
    ] {
        let err = state.read(&key).await.unwrap_err().to_string();
        assert!(err.contains("shared state key"), "{key:?}: {err}");
        assert!(
            state.write_if(&key, &json!({"v": 1}), None).await.is_err(),
            "{key:?}"
        );
        assert!(state.delete(&key).await.is_err(), "{key:?}");
        assert!(
            state
                .try_lease(&key, "h", Duration::from_secs(1))
                .await
                .is_err(),
            "{key:?}"
        );
    }
    assert!(state.list(&format!("{namespace}/*")).await.is_err());
    // A document is a JSON object.
    for document in [json!(1), json!("text"), json!([1]), json!(null)] {
        let err = state
            .write_if(&format!("{namespace}/not-an-object"), &document, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("JSON object"), "{document}: {err}");
    }
}

/// A lease has one holder; it may renew it; another cannot take or release it.
pub async fn leases_have_one_holder(state: &dyn SharedState, namespace: &str) {
    let key = format!("{namespace}/lease/one");
    let ttl = Duration::from_secs(30);
    assert!(state.try_lease(&key, "replica-a", ttl).await.unwrap());
    assert!(!state.try_lease(&key, "replica-b", ttl).await.unwrap());
    assert!(state.try_lease(&key, "replica-a", ttl).await.unwrap());
    state.release(&key, "replica-b").await.unwrap();
    assert!(!state.try_lease(&key, "replica-b", ttl).await.unwrap());
    state.release(&key, "replica-a").await.unwrap();
    assert!(state.try_lease(&key, "replica-b", ttl).await.unwrap());
    state.release(&key, "replica-b").await.unwrap();
    // A lease and a document of one name are apart.
    assert_eq!(state.read(&key).await.unwrap(), None);
}

/// A lease not given back lapses after its time.
pub async fn leases_lapse(state: &dyn SharedState, namespace: &str) {
    let key = format!("{namespace}/lease/lapse");
    assert!(
        state
            .try_lease(&key, "crashed", Duration::from_secs(1))
            .await
            .unwrap()
    );
    // Backends may count in whole seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        state
            .try_lease(&key, "survivor", Duration::from_secs(30))
            .await
            .unwrap()
    );
    state.release(&key, "survivor").await.unwrap();
}

/// Of many writes on one version at once, exactly one wins.
pub async fn concurrent_writes_have_one_winner(state: &dyn SharedState, namespace: &str) {
    let key = format!("{namespace}/race/doc");
    let writes = (0..50).map(|n| {
        let key = key.clone();
        async move { state.write_if(&key, &json!({"v": n}), None).await.unwrap() }
    });
    let won: Vec<u64> = futures::future::join_all(writes)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(state.read(&key).await.unwrap().unwrap().1, won[0]);
}

/// Of many holders asking for one lease at once, exactly one gets it.
pub async fn concurrent_leases_have_one_winner(state: &dyn SharedState, namespace: &str) {
    let key = format!("{namespace}/race/lease");
    let takes = (0..50).map(|n| {
        let key = key.clone();
        async move {
            state
                .try_lease(&key, &format!("replica-{n}"), Duration::from_secs(30))
                .await
                .unwrap()
        }
    });
    let taken = futures::future::join_all(takes)
        .await
        .into_iter()
        .filter(|taken| *taken)
        .count();
    assert_eq!(taken, 1);
}
