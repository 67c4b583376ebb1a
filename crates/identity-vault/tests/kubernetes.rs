//! Kubernetes authentication against a real OpenBao server.
//!
//! OpenBao checks a service-account JWT by asking the Kubernetes API (`TokenReview`). No
//! Kubernetes API server can run here, so a small stand-in answers that one call, approving only
//! the tokens the test allows; everything else (the login, the role's bindings, the token and its
//! policy) is OpenBao's own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, CredentialWriter, Error, Secret,
};
use identity_test_support::{BAO_ROOT_TOKEN, OpenBao, request_context};
use identity_vault::{VaultAuth, VaultCredentialStore};
use serde_json::{Value, json};

/// A CA certificate OpenBao requires in its Kubernetes configuration; the stand-in serves plain
/// HTTP, so it is never used to verify anything (its private key was discarded).
const KUBERNETES_CA: &str = include_str!("kubernetes-ca.pem");

/// What the stand-in approves and what it was asked.
#[derive(Default)]
struct Reviews {
    approved: BTreeSet<String>,
    seen: Vec<String>,
}

type Shared = Arc<Mutex<Reviews>>;

async fn token_review(State(reviews): State<Shared>, Json(review): Json<Value>) -> Json<Value> {
    let token = review["spec"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut reviews = reviews.lock().unwrap();
    let authenticated = reviews.approved.contains(&token);
    reviews.seen.push(token);
    Json(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "status": {
            "authenticated": authenticated,
            "user": {
                "username": "system:serviceaccount:default:agent-identity",
                "uid": "0d7e1f3a-service-account-uid",
                "groups": ["system:serviceaccounts"]
            }
        }
    }))
}

/// A service-account JWT as the kubelet writes it (the stand-in, not a signature, vouches for it).
fn service_account_jwt(serial: u32) -> String {
    let part = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.{}",
        part(json!({"alg": "RS256", "kid": "test"})),
        part(json!({
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:default:agent-identity",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/service-account.name": "agent-identity",
            "kubernetes.io/serviceaccount/service-account.uid": "0d7e1f3a-service-account-uid",
            "serial": serial,
        })),
        URL_SAFE_NO_PAD.encode(format!("signature-{serial}")),
    )
}

async fn kubernetes_api(reviews: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(token_review),
        )
        .with_state(reviews);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// An OpenBao server whose Kubernetes auth asks the stand-in behind `reviews`, with role
/// `agent-identity` bound to service account `default/agent-identity` and given `policies`.
async fn with_kubernetes_auth(reviews: Shared, policies: &[&str]) -> OpenBao {
    let kubernetes = kubernetes_api(reviews).await;
    let bao = OpenBao::start().await;
    bao.ok(
        "POST",
        "sys/auth/kubernetes",
        Some(json!({"type": "kubernetes"})),
    )
    .await;
    bao.ok(
        "POST",
        "auth/kubernetes/config",
        Some(
            json!({"kubernetes_host": kubernetes, "disable_local_ca_jwt": true,
            "kubernetes_ca_cert": KUBERNETES_CA}),
        ),
    )
    .await;
    bao.ok(
        "POST",
        "auth/kubernetes/role/agent-identity",
        Some(json!({
            "bound_service_account_names": ["agent-identity"],
            "bound_service_account_namespaces": ["default"],
            "token_policies": policies,
            "token_ttl": "1h",
        })),
    )
    .await;
    bao
}

fn jwt_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("agent-identity-k8s-{name}-{}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_login_reads_the_service_account_token_at_each_login() {
    let reviews: Shared = Arc::default();
    let bao = with_kubernetes_auth(reviews.clone(), &["agents"]).await;
    bao.enable_kv2("kv").await;
    bao.write_policy(
        "agents",
        r#"path "kv/data/agents/*" { capabilities = ["read"] }"#,
    )
    .await;
    let root =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .mount("kv")
            .prefix("agents")
            .build()
            .unwrap();
    root.put(
        Credential::new("cred-openai", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk-k8s")),
    )
    .await
    .unwrap();

    let path = jwt_file("rotating");
    let first = service_account_jwt(1);
    std::fs::write(&path, format!("{first}\n")).unwrap();
    reviews.lock().unwrap().approved.insert(first.clone());
    let store = VaultCredentialStore::builder(
        bao.address(),
        VaultAuth::kubernetes("agent-identity").with_jwt_path(&path),
    )
    .mount("kv")
    .prefix("agents")
    .build()
    .unwrap();
    let slot = CredentialRef::new("openai").unwrap();
    let found = store
        .find_by_ref(&slot, &request_context())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.secret.unwrap().expose_secret(), "sk-k8s");
    assert_eq!(reviews.lock().unwrap().seen, [first]);

    // The kubelet rotates the token; the old one stops being accepted and the store's Vault
    // token is revoked. The next call logs in again with the token now in the file.
    let second = service_account_jwt(2);
    std::fs::write(&path, &second).unwrap();
    {
        let mut reviews = reviews.lock().unwrap();
        reviews.approved.clear();
        reviews.approved.insert(second.clone());
    }
    bao.revoke_login_tokens("kubernetes").await;
    assert!(
        store
            .find_by_ref(&slot, &request_context())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(reviews.lock().unwrap().seen.last(), Some(&second));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_refused_service_account_token_is_unauthenticated() {
    let reviews: Shared = Arc::default();
    let bao = with_kubernetes_auth(reviews, &[]).await;
    let missing = jwt_file("missing");
    let store = VaultCredentialStore::builder(
        bao.address(),
        VaultAuth::kubernetes("agent-identity").with_jwt_path(&missing),
    )
    .build()
    .unwrap();
    let err = store.health().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthenticated { detail, .. } if detail.contains(&missing.display().to_string())),
        "{err:?}"
    );

    // A token the Kubernetes API does not vouch for: Vault refuses the login.
    let path = jwt_file("refused");
    let token = service_account_jwt(3);
    std::fs::write(&path, &token).unwrap();
    let store = VaultCredentialStore::builder(
        bao.address(),
        VaultAuth::kubernetes("agent-identity").with_jwt_path(&path),
    )
    .build()
    .unwrap();
    let err = store.health().await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(&token));
    let _ = std::fs::remove_file(&path);
}
