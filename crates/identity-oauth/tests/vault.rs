//! Connections shared by replicas through a real OpenBao, refreshed against a real authorization
//! server (oidc-provider, which rotates refresh tokens and revokes the grant when an old one is
//! used again).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use identity_core::{CredentialRef, CredentialStore, RequestContext, ResourceKind, Secret};
use identity_dcr::{ClientMetadata, Dcr};
use identity_http::{ClientCredentials, OutboundPolicy};
use identity_oauth::{
    AuthorizationRequest, DelegatedTokenStore, OAuthClient, Provider, SharedTokens, check_callback,
};
use identity_seal::Keyring;
use identity_test_support::{AuthorizationServer, BAO_ROOT_TOKEN, OpenBao};
use identity_vault::{VaultAuth, VaultCredentialStore};

const REDIRECT: &str = "http://127.0.0.1:1/callback";

async fn code_client(server: &AuthorizationServer) -> OAuthClient {
    let dcr = Dcr::new(OutboundPolicy::default().allow_http_loopback(true)).unwrap();
    let metadata = dcr.discover(server.issuer()).await.unwrap();
    let wanted = ClientMetadata::web_app("replicas", REDIRECT, "openid offline_access");
    let registered = dcr.register(&metadata, &wanted, None).await.unwrap();
    OAuthClient::new(
        dcr.http().clone(),
        metadata,
        ClientCredentials::basic(registered.client_id, registered.client_secret.unwrap()),
    )
}

/// One sidecar replica: its own Vault client, the shared connections, every read a refresh.
fn replica(bao: &OpenBao, client: &OAuthClient) -> DelegatedTokenStore {
    let vault =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .mount("kv")
            .build()
            .unwrap();
    let tokens = SharedTokens::new(
        Arc::new(vault.documents("connections").unwrap()),
        Keyring::new("k1", [9; 32]),
    );
    // Tokens live 600 s here; a one-hour window makes every read refresh.
    DelegatedTokenStore::new(Arc::new(tokens))
        .refresh_window(Duration::from_secs(3600))
        .provider(
            CredentialRef::new("user-idp").unwrap(),
            Provider::with_client("idp", client.clone()),
        )
}

fn context(user: &str) -> RequestContext {
    RequestContext::builder()
        .user_id(user)
        .resource_id("repo")
        .resource_kind(ResourceKind::Personal)
        .provider("idp")
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_spend_the_same_rotating_refresh_token() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let server = AuthorizationServer::start().await;
    let client = code_client(&server).await;
    let (url, pending) = AuthorizationRequest::new(client.client_id(), REDIRECT)
        .scopes(["openid", "offline_access"])
        .prompt("consent")
        .login_hint("alice")
        .build(client.server())
        .unwrap();
    let callback = server.follow_authorization(url.as_str(), REDIRECT).await;
    let query: Vec<(String, String)> = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let code = check_callback(&pending, &pairs).unwrap();
    let connected = client.exchange_code(&pending, &code).await.unwrap();

    let a = replica(&bao, &client);
    let b = replica(&bao, &client);
    a.connect("alice", "idp", &connected).await.unwrap();

    // Both replicas read at once, each read a refresh: the lease taken through Vault lets one
    // replica at a time spend the refresh token, and the other reads what it saved. Had both
    // spent one, the server would have revoked the grant and the later reads failed.
    let slot = CredentialRef::new("user-idp").unwrap();
    let alice = context("alice");
    let reads = (0..6).map(|i| {
        let store = if i % 2 == 0 { &a } else { &b };
        store.find_by_ref(&slot, &alice)
    });
    let results = futures::future::join_all(reads).await;
    let mut last = String::new();
    for result in results {
        let credential = result.unwrap().unwrap();
        last = credential.secret.unwrap().expose_secret().to_owned();
        assert_ne!(last, connected.access_token.expose_secret());
    }
    let latest = a.stored("alice", "idp").await.unwrap().unwrap();
    assert_eq!(
        server.introspect(latest.access_token.expose_secret()).await["active"],
        true
    );
    assert!(!last.is_empty());

    // What Vault holds names the connection and seals its tokens.
    let (status, raw) = bao
        .api("LIST", "kv/metadata/connections/connections", None)
        .await;
    assert_eq!(status, 200, "{raw}");
    let user_key = raw["data"]["keys"][0].as_str().unwrap().to_owned();
    let (_, entry) = bao
        .api(
            "GET",
            &format!("kv/data/connections/connections/{user_key}aWRw"),
            None,
        )
        .await;
    let text = entry.to_string();
    assert!(text.contains("\"alice\""), "{text}");
    assert!(!text.contains(latest.access_token.expose_secret()));
    assert!(!text.contains(latest.refresh_token.as_ref().unwrap().expose_secret()));

    // Alice's sealed tokens copied to bob's entry do not open there: an error, not bob's tokens.
    let mut moved = entry["data"]["data"].clone();
    moved["user"] = "bob".into();
    let (status, _) = bao
        .api(
            "POST",
            "kv/data/connections/connections/Ym9i/aWRw",
            Some(serde_json::json!({ "data": moved })),
        )
        .await;
    assert_eq!(status, 200);
    let err = b.find_by_ref(&slot, &context("bob")).await.unwrap_err();
    assert!(err.to_string().contains("bob"), "{err}");

    // Disconnecting on one replica revokes and forgets for both.
    assert!(b.disconnect("alice", "idp").await.unwrap());
    assert!(matches!(
        a.find_by_ref(&slot, &alice).await,
        Err(identity_core::Error::ConsentRequired { .. })
    ));
    assert_eq!(
        server.introspect(latest.access_token.expose_secret()).await["active"],
        false
    );
    // And alice can connect again after that (the deleted entry's version is named).
    a.connect("alice", "idp", &connected).await.unwrap();
    assert!(b.stored("alice", "idp").await.unwrap().is_some());
}
