//! `VaultDynamicSecrets` against a real OpenBao whose `database` engine mints logins on a real
//! PostgreSQL: a resolution's login works, a revoked lease's login fails, a renewal extends it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::time::Duration;

use identity_core::{CredentialRef, CredentialStore, OffsetDateTime, RoutingRule, Secret};
use identity_router::Router;
use identity_test_support::{BAO_ROOT_TOKEN, OpenBao, PostgresServer, request_context};
use identity_vault::{VaultAuth, VaultCredentialStore, VaultDynamicSecrets};
use serde_json::Value;

/// OpenBao whose `database` engine mints logins on `postgres` (role `reader`).
async fn database_engine(postgres: &PostgresServer) -> OpenBao {
    let bao = OpenBao::start().await;
    postgres.serve_logins_through(&bao).await;
    bao
}

fn dynamic(bao: &OpenBao) -> VaultDynamicSecrets {
    let vault =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .build()
            .unwrap();
    VaultDynamicSecrets::new(&vault, "database").unwrap()
}

fn login(secret: &Secret) -> (String, String) {
    let login: Value = serde_json::from_str(secret.expose_secret()).unwrap();
    (
        login["username"].as_str().unwrap().to_owned(),
        login["password"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_logs_in_and_a_revoked_lease_no_longer_does() {
    let postgres = PostgresServer::start();
    let bao = database_engine(&postgres).await;
    let store = dynamic(&bao);
    let router = Router::builder()
        .default_store(store.clone())
        .rule(RoutingRule::new("reports", "reader").with_priority(1))
        .build()
        .unwrap();

    // Two resolutions, two logins, both working.
    let first = router.resolve(&request_context()).await.unwrap();
    let second = router.resolve(&request_context()).await.unwrap();
    assert_ne!(first.credential_id, second.credential_id);
    let (user, password) = login(first.secret().unwrap());
    let (other_user, other_password) = login(second.secret().unwrap());
    assert_ne!(user, other_user);
    postgres.log_in(&user, &password).unwrap();
    postgres.log_in(&other_user, &other_password).unwrap();
    assert!(first.credential_id.starts_with("database/creds/reader/"));
    let expires = first.expires_at.unwrap();
    let in_an_hour = OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(
        (expires - in_an_hour).abs() < time::Duration::minutes(1),
        "{expires}"
    );
    assert_eq!(store.leases().len(), 2);

    // The first lease is revoked: its login fails, the other still works.
    store.revoke(&first.credential_id).await.unwrap();
    let refused = postgres.log_in(&user, &password).unwrap_err();
    assert!(
        refused.contains("password authentication failed") || refused.contains("does not exist"),
        "{refused}"
    );
    postgres.log_in(&other_user, &other_password).unwrap();
    assert_eq!(store.leases().len(), 1);

    // A refused secret's lease is revoked, and only that one.
    let third = router.resolve(&request_context()).await.unwrap();
    router
        .forget_refused(&second, &request_context())
        .await
        .unwrap();
    assert!(postgres.log_in(&other_user, &other_password).is_err());
    let (third_user, third_password) = login(third.secret().unwrap());
    postgres.log_in(&third_user, &third_password).unwrap();

    // At shutdown every lease held is revoked.
    assert_eq!(store.revoke_all().await.unwrap(), 1);
    assert!(postgres.log_in(&third_user, &third_password).is_err());
    assert!(store.leases().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_renewed_up_to_the_roles_maximum_and_an_unknown_role_is_not_found() {
    let postgres = PostgresServer::start();
    let bao = database_engine(&postgres).await;
    let store = dynamic(&bao);
    let credential = store
        .find_by_ref(&CredentialRef::new("reader").unwrap(), &request_context())
        .await
        .unwrap()
        .unwrap();
    let before = credential.expires_at.unwrap();
    let renewed = store
        .renew(&credential.id, Duration::from_secs(90 * 60))
        .await
        .unwrap();
    assert!(
        renewed > before + time::Duration::minutes(20),
        "{before} -> {renewed}"
    );
    assert_eq!(store.leases()[0].expires_at, renewed);
    let (user, password) = login(credential.secret.as_ref().unwrap());
    postgres.log_in(&user, &password).unwrap();

    let missing = store
        .find_by_ref(&CredentialRef::new("writer").unwrap(), &request_context())
        .await;
    assert!(matches!(missing, Ok(None)), "{missing:?}");
    store.revoke_all().await.unwrap();
}
