//! The conformance suite every [`ClientPersistence`] passes (feature `testing`): memory and the
//! sealed file run it alike, so that the registry above them can rely on the same rules.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! identity_dcr::testing::run_client_persistence_conformance(&identity_dcr::MemoryPersistence::default(), "doc").await;
//! # });
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a conformance suite fails by panicking, as a test does"
)]

use crate::registration::RegisteredClient;
use crate::registry::{ClientKey, ClientPersistence};

/// Runs every check below against `persistence`; `namespace` keeps this run's issuers apart.
/// The last check clears the persistence.
pub async fn run_client_persistence_conformance(
    persistence: &dyn ClientPersistence,
    namespace: &str,
) {
    round_trips_every_field(persistence, namespace).await;
    save_replaces(persistence, namespace).await;
    keys_are_separate(persistence, namespace).await;
    remove_forgets(persistence, namespace).await;
    no_secret_in_debug(persistence, namespace).await;
    clear_forgets_everything(persistence, namespace).await;
}

fn key(namespace: &str, issuer: &str, profile: &str) -> ClientKey {
    ClientKey {
        issuer: format!("https://{namespace}.{issuer}.example.com"),
        profile: profile.to_owned(),
    }
}

fn client(key: &ClientKey, id: &str) -> RegisteredClient {
    let answer = serde_json::json!({
        "client_id": id,
        "client_secret": format!("{id}-secret"),
        "client_secret_expires_at": 2_000_000_000,
        "registration_access_token": format!("{id}-rat"),
        "registration_client_uri": format!("{}/reg/{id}", key.issuer),
        "client_name": "agent",
        "grant_types": ["client_credentials"],
        "scope": "crm:read",
    });
    RegisteredClient::from_registration_answer(&key.issuer, answer).unwrap()
}

/// What is saved is what is loaded.
pub async fn round_trips_every_field(persistence: &dyn ClientPersistence, namespace: &str) {
    let k = key(namespace, "round", "crm");
    assert!(persistence.load(&k).await.unwrap().is_none());
    persistence.save(&k, &client(&k, "c1")).await.unwrap();
    let loaded = persistence.load(&k).await.unwrap().unwrap();
    assert_eq!(loaded.issuer, k.issuer);
    assert_eq!(loaded.client_id, "c1");
    assert_eq!(loaded.client_secret.unwrap().expose_secret(), "c1-secret");
    assert_eq!(
        loaded.registration_access_token.unwrap().expose_secret(),
        "c1-rat"
    );
    assert_eq!(
        loaded.client_secret_expires_at.map(|t| t.unix_timestamp()),
        Some(2_000_000_000)
    );
    assert_eq!(
        loaded.registration_client_uri.unwrap().as_str(),
        format!("{}/reg/c1", k.issuer)
    );
    assert_eq!(loaded.metadata.client_name.as_deref(), Some("agent"));
    assert_eq!(loaded.metadata.scope.as_deref(), Some("crm:read"));
}

/// A save replaces the client kept for its key.
pub async fn save_replaces(persistence: &dyn ClientPersistence, namespace: &str) {
    let k = key(namespace, "replace", "crm");
    persistence.save(&k, &client(&k, "old")).await.unwrap();
    persistence.save(&k, &client(&k, "new")).await.unwrap();
    assert_eq!(
        persistence.load(&k).await.unwrap().unwrap().client_id,
        "new"
    );
}

/// Issuers and profiles key clients apart.
pub async fn keys_are_separate(persistence: &dyn ClientPersistence, namespace: &str) {
    let a = key(namespace, "sep-a", "crm");
    let b = key(namespace, "sep-b", "crm");
    let a_other = key(namespace, "sep-a", "erp");
    persistence.save(&a, &client(&a, "a")).await.unwrap();
    assert!(persistence.load(&b).await.unwrap().is_none());
    assert!(persistence.load(&a_other).await.unwrap().is_none());
    persistence
        .save(&a_other, &client(&a_other, "a-erp"))
        .await
        .unwrap();
    assert_eq!(persistence.load(&a).await.unwrap().unwrap().client_id, "a");
    assert_eq!(
        persistence.load(&a_other).await.unwrap().unwrap().client_id,
        "a-erp"
    );
}

/// Removing forgets one client and no other; removing an absent one is no error.
pub async fn remove_forgets(persistence: &dyn ClientPersistence, namespace: &str) {
    let k = key(namespace, "remove", "crm");
    let kept = key(namespace, "remove", "kept");
    persistence.remove(&k).await.unwrap();
    persistence.save(&k, &client(&k, "r")).await.unwrap();
    persistence.save(&kept, &client(&kept, "k")).await.unwrap();
    persistence.remove(&k).await.unwrap();
    assert!(persistence.load(&k).await.unwrap().is_none());
    assert!(persistence.load(&kept).await.unwrap().is_some());
}

/// Debug output shows no secret.
pub async fn no_secret_in_debug(persistence: &dyn ClientPersistence, namespace: &str) {
    let k = key(namespace, "debug", "crm");
    persistence
        .save(&k, &client(&k, "canary-91f3"))
        .await
        .unwrap();
    let loaded = persistence.load(&k).await.unwrap().unwrap();
    let shown = format!("{persistence:?} {loaded:?}");
    assert!(
        !shown.contains("canary-91f3-secret") && !shown.contains("canary-91f3-rat"),
        "{shown}"
    );
}

/// Clearing forgets every client.
pub async fn clear_forgets_everything(persistence: &dyn ClientPersistence, namespace: &str) {
    let k = key(namespace, "clear", "crm");
    persistence.save(&k, &client(&k, "c")).await.unwrap();
    persistence.clear().await.unwrap();
    assert!(persistence.load(&k).await.unwrap().is_none());
    assert!(
        persistence
            .load(&key(namespace, "round", "crm"))
            .await
            .unwrap()
            .is_none()
    );
}
