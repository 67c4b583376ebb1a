//! The conformance suite every [`TokenPersistence`] passes (feature `testing`): memory, the
//! sealed file and Vault run it alike, so that the refresh logic above them can rely on the same
//! compare-and-set and lease rules whatever keeps the connections.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! identity_oauth::testing::run_token_persistence_conformance(&identity_oauth::MemoryTokens::default(), "doc").await;
//! # });
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a conformance suite fails by panicking, as a test does"
)]

use std::time::Duration;

use identity_core::{OffsetDateTime, Secret};

use crate::delegated::{Connection, TokenPersistence};
use crate::tokens::TokenSet;

/// Runs every check below against `persistence`; `namespace` keeps this run's users apart from
/// other runs sharing the backend.
pub async fn run_token_persistence_conformance(
    persistence: &dyn TokenPersistence,
    namespace: &str,
) {
    round_trips_every_field(persistence, namespace).await;
    saves_compare_and_set(persistence, namespace).await;
    connections_are_separate(persistence, namespace).await;
    remove_forgets(persistence, namespace).await;
    leases_have_one_holder(persistence, namespace).await;
    leases_lapse(persistence, namespace).await;
    concurrent_saves_have_one_winner(persistence, namespace).await;
    no_token_in_debug(persistence, namespace).await;
}

fn connection(namespace: &str, user: &str, provider: &str) -> Connection {
    Connection {
        user: format!("{namespace}-{user}"),
        provider: provider.to_owned(),
    }
}

fn tokens(access: &str) -> TokenSet {
    let mut tokens = TokenSet::bearer(
        Secret::new(access),
        // Whole seconds: stores keep the expiry to the second.
        Some(OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap()),
    );
    tokens.refresh_token = Some(Secret::new(format!("{access}-refresh")));
    tokens.id_token = Some(Secret::new(format!("{access}-id")));
    tokens.scope = Some("read write".into());
    tokens
}

/// What is saved is what is loaded: every token, the scope and the expiry.
pub async fn round_trips_every_field(persistence: &dyn TokenPersistence, namespace: &str) {
    let alice = connection(namespace, "alice", "github");
    assert!(persistence.load(&alice).await.unwrap().is_none());
    let version = persistence
        .save_if(&alice, &tokens("gho-1"), None)
        .await
        .unwrap()
        .expect("a first save succeeds");
    let loaded = persistence.load(&alice).await.unwrap().unwrap();
    assert_eq!(loaded.version, version);
    let t = loaded.tokens;
    assert_eq!(t.access_token.expose_secret(), "gho-1");
    assert_eq!(t.refresh_token.unwrap().expose_secret(), "gho-1-refresh");
    assert_eq!(t.id_token.unwrap().expose_secret(), "gho-1-id");
    assert_eq!(t.scope.as_deref(), Some("read write"));
    assert_eq!(t.expires_at, tokens("x").expires_at);
    // A connection without expiry or refresh token stays so.
    let bare = connection(namespace, "bare", "kaggle");
    persistence
        .save_if(&bare, &TokenSet::bearer(Secret::new("k"), None), None)
        .await
        .unwrap()
        .unwrap();
    let loaded = persistence.load(&bare).await.unwrap().unwrap().tokens;
    assert!(loaded.expires_at.is_none() && loaded.refresh_token.is_none());
}

/// A save succeeds only on the version read; a stale one changes nothing.
pub async fn saves_compare_and_set(persistence: &dyn TokenPersistence, namespace: &str) {
    let alice = connection(namespace, "cas", "github");
    let first = persistence
        .save_if(&alice, &tokens("a1"), None)
        .await
        .unwrap()
        .unwrap();
    assert!(
        persistence
            .save_if(&alice, &tokens("a-racer"), None)
            .await
            .unwrap()
            .is_none(),
        "a save expecting no connection succeeded over one"
    );
    let second = persistence
        .save_if(&alice, &tokens("a2"), Some(first))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first, second);
    assert!(
        persistence
            .save_if(&alice, &tokens("a-stale"), Some(first))
            .await
            .unwrap()
            .is_none(),
        "a save on a stale version succeeded"
    );
    let loaded = persistence.load(&alice).await.unwrap().unwrap();
    assert_eq!(loaded.version, second);
    assert_eq!(loaded.tokens.access_token.expose_secret(), "a2");
}

/// One user's connection is not another's, nor another provider's.
pub async fn connections_are_separate(persistence: &dyn TokenPersistence, namespace: &str) {
    let alice = connection(namespace, "sep-alice", "github");
    let bob = connection(namespace, "sep-bob", "github");
    let alice_google = connection(namespace, "sep-alice", "google");
    persistence
        .save_if(&alice, &tokens("alice-gh"), None)
        .await
        .unwrap()
        .unwrap();
    assert!(persistence.load(&bob).await.unwrap().is_none());
    assert!(persistence.load(&alice_google).await.unwrap().is_none());
    persistence
        .save_if(&bob, &tokens("bob-gh"), None)
        .await
        .unwrap()
        .unwrap();
    let a = persistence.load(&alice).await.unwrap().unwrap().tokens;
    let b = persistence.load(&bob).await.unwrap().unwrap().tokens;
    assert_eq!(a.access_token.expose_secret(), "alice-gh");
    assert_eq!(b.access_token.expose_secret(), "bob-gh");
}

/// Removing forgets the connection, and a removed connection can be made again.
pub async fn remove_forgets(persistence: &dyn TokenPersistence, namespace: &str) {
    let alice = connection(namespace, "remove", "github");
    persistence.remove(&alice).await.unwrap();
    persistence
        .save_if(&alice, &tokens("r1"), None)
        .await
        .unwrap()
        .unwrap();
    persistence.remove(&alice).await.unwrap();
    assert!(persistence.load(&alice).await.unwrap().is_none());
    let again = persistence.load(&alice).await.unwrap().map(|v| v.version);
    persistence
        .save_if(&alice, &tokens("r2"), again)
        .await
        .unwrap()
        .expect("a connection made again after removal");
}

/// A lease has one holder; it may renew it; another cannot take or release it.
pub async fn leases_have_one_holder(persistence: &dyn TokenPersistence, namespace: &str) {
    let alice = connection(namespace, "lease", "github");
    let ttl = Duration::from_secs(30);
    assert!(
        persistence
            .try_lease(&alice, "replica-a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !persistence
            .try_lease(&alice, "replica-b", ttl)
            .await
            .unwrap()
    );
    assert!(
        persistence
            .try_lease(&alice, "replica-a", ttl)
            .await
            .unwrap()
    );
    persistence.release(&alice, "replica-b").await.unwrap();
    assert!(
        !persistence
            .try_lease(&alice, "replica-b", ttl)
            .await
            .unwrap()
    );
    persistence.release(&alice, "replica-a").await.unwrap();
    assert!(
        persistence
            .try_lease(&alice, "replica-b", ttl)
            .await
            .unwrap()
    );
    persistence.release(&alice, "replica-b").await.unwrap();
}

/// A lease not given back lapses after its time.
pub async fn leases_lapse(persistence: &dyn TokenPersistence, namespace: &str) {
    let alice = connection(namespace, "lapse", "github");
    assert!(
        persistence
            .try_lease(&alice, "crashed", Duration::from_secs(1))
            .await
            .unwrap()
    );
    // Stores may count in whole seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        persistence
            .try_lease(&alice, "survivor", Duration::from_secs(30))
            .await
            .unwrap()
    );
    persistence.release(&alice, "survivor").await.unwrap();
}

/// Of many saves on one version at once, exactly one wins.
pub async fn concurrent_saves_have_one_winner(persistence: &dyn TokenPersistence, namespace: &str) {
    let alice = connection(namespace, "race", "github");
    let base = persistence
        .save_if(&alice, &tokens("base"), None)
        .await
        .unwrap()
        .unwrap();
    let attempts: Vec<TokenSet> = (0..8).map(|i| tokens(&format!("racer-{i}"))).collect();
    let saves = attempts
        .iter()
        .map(|t| persistence.save_if(&alice, t, Some(base)));
    let outcomes = futures::future::join_all(saves).await;
    let winners = outcomes
        .into_iter()
        .filter(|o| matches!(o, Ok(Some(_))))
        .count();
    assert_eq!(winners, 1, "compare-and-set let {winners} saves win");
}

/// Debug output of the persistence and of what it loads shows no token.
pub async fn no_token_in_debug(persistence: &dyn TokenPersistence, namespace: &str) {
    let alice = connection(namespace, "debug", "github");
    persistence
        .save_if(&alice, &tokens("canary-7d1f"), None)
        .await
        .unwrap()
        .unwrap();
    let loaded = persistence.load(&alice).await.unwrap().unwrap();
    let shown = format!("{persistence:?} {loaded:?}");
    assert!(!shown.contains("canary-7d1f"), "{shown}");
}
