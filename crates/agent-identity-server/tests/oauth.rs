//! Users connect their own accounts through the sidecar's `/oauth/` endpoints, against a real
//! authorization server (oidc-provider, with headless login): the browser is a cookie-keeping
//! HTTP client, and resolutions then yield the user's own token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_identity::identity_dcr::{ClientMetadata, Dcr};
use agent_identity::identity_http::OutboundPolicy;
use agent_identity::{CredentialRef, CredentialStore, RequestContext, ResourceKind};
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::cli::serve::Server;
use agent_identity_server::config::load_str;
use base64::Engine;
use identity_test_support::AuthorizationServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: [u8; 32] = [42; 32];

struct Sidecar {
    base: String,
    store: Arc<agent_identity::identity_oauth::DelegatedTokenStore>,
    dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port: the public URL names it before the sidecar binds it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A sidecar with an `oauth` store: `idp` (a client it registers itself), `corp` (an OpenID
/// provider with a pre-registered client) and `kaggle` (API tokens), connections in a sealed
/// file, and `extra` appended to the configuration.
async fn sidecar(server: &AuthorizationServer, name: &str, extra: &str) -> Sidecar {
    sidecar_keeping(
        server,
        name,
        "connections_file = \"connections.json\"",
        extra,
    )
    .await
}

/// [`sidecar`], with `connections` saying where connections are kept.
async fn sidecar_keeping(
    server: &AuthorizationServer,
    name: &str,
    connections: &str,
    extra: &str,
) -> Sidecar {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let dcr = Dcr::new(OutboundPolicy::default().allow_http_loopback(true)).unwrap();
    let metadata = dcr.discover(server.issuer()).await.unwrap();
    let corp = dcr
        .register(
            &metadata,
            &ClientMetadata::web_app(
                "corp-app",
                format!("{base}/oauth/corp/callback"),
                "openid offline_access",
            ),
            None,
        )
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "agent-identity-oauth-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let issuer = server.issuer();
    let corp_id = &corp.client_id;
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[stores.users]
type = "oauth"
public_url = "{base}"
allow_http_loopback = true
{connections}
connections_key_env = "CONNECTIONS_KEY"

[stores.users.providers.idp]
preset = "dcr"
ref = "user-idp"
issuer = "{issuer}"
scopes = ["openid", "offline_access"]
prompt = "consent"

[stores.users.providers.corp]
preset = "openid"
ref = "user-corp"
issuer = "{issuer}"
client_id = "{corp_id}"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "offline_access"]
allowed_scopes = ["openid", "offline_access", "crm:read"]
prompt = "consent"

[stores.users.providers.kaggle]
preset = "kaggle"
ref = "user-kaggle"

[[rules]]
id = "idp"
credentialRef = "user-idp"
credentialKind = "user-delegated"
store = "users"
matchProvider = "idp"
priority = 1

[[rules]]
id = "kaggle"
credentialRef = "user-kaggle"
credentialKind = "user-delegated"
store = "users"
matchProvider = "kaggle"
priority = 2
{extra}"#
    );
    let secret = corp
        .client_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let env = move |name: &str| match name {
        "CONNECTIONS_KEY" => Some(base64::engine::general_purpose::STANDARD.encode(KEY)),
        "CORP_SECRET" => Some(secret.clone()),
        "ALICE_KEY" => Some("alice-key-0123456789".into()),
        "BAO_TOKEN" => Some(identity_test_support::BAO_ROOT_TOKEN.into()),
        _ => None,
    };
    let loaded = load_str(&config, &dir, "test".into(), &env, None).unwrap();
    let store = loaded.oauth.as_ref().unwrap().store.clone();
    let server = Server::bind(loaded, Arc::new(Metrics::new()))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Sidecar {
        base,
        store,
        dir,
        stop: Some(stop),
    }
}

/// A browser: it keeps cookies and does not follow redirects (the test follows them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Starts a connection of `user` to `provider`: the provider's authorize URL, and the flow
/// cookie as set.
async fn start(
    browser: &reqwest::Client,
    sidecar: &Sidecar,
    provider: &str,
    user: &str,
) -> (String, String) {
    let response = browser
        .get(format!(
            "{}/oauth/{provider}/connect?userId={user}&login_hint={user}",
            sidecar.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    (location, cookie)
}

/// The whole flow in the browser: connect, the provider's login and consent, the callback.
async fn connect(
    browser: &reqwest::Client,
    server: &AuthorizationServer,
    sidecar: &Sidecar,
    provider: &str,
    user: &str,
) -> (reqwest::Response, String) {
    let (authorize, cookie) = start(browser, sidecar, provider, user).await;
    let callback = server
        .follow_authorization(
            &authorize,
            &format!("{}/oauth/{provider}/callback", sidecar.base),
        )
        .await;
    (browser.get(&callback).send().await.unwrap(), cookie)
}

fn context(user: &str, provider: &str) -> RequestContext {
    RequestContext::builder()
        .user_id(user)
        .resource_id("repo")
        .resource_kind(ResourceKind::Personal)
        .provider(provider)
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap()
}

async fn resolve_over_http(sidecar: &Sidecar, user: &str, provider: &str) -> (StatusCode, String) {
    let body = json!({"userId": user, "resourceId": "repo", "resourceKind": "personal",
        "provider": provider, "model": "m", "action": "read", "traceId": "t"});
    let response = reqwest::Client::new()
        .post(format!("{}/api/resolve", sidecar.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_connects_through_the_sidecar_and_resolutions_yield_the_users_token() {
    let server = AuthorizationServer::start().await;
    let sidecar = sidecar(&server, "flow", "").await;
    let browser = browser();

    // The whole code + PKCE flow, through the sidecar's endpoints, with a client the sidecar
    // registered itself (preset "dcr").
    let (response, cookie) = connect(&browser, &server, &sidecar, "idp", "alice").await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["connected"], true);
    assert_eq!(body["userId"], "alice");
    assert_eq!(body["account"]["id"], "alice", "{body}");
    assert!(body["expiresAt"].is_string(), "{body}");

    // A resolution for alice yields alice's token; over HTTP only its metadata travels.
    let credential = sidecar
        .store
        .find_by_ref(
            &CredentialRef::new("user-idp").unwrap(),
            &context("alice", "idp"),
        )
        .await
        .unwrap()
        .unwrap();
    let token = credential
        .secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let introspected = server.introspect(&token).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["sub"], "alice", "{introspected}");
    let (status, text) = resolve_over_http(&sidecar, "alice", "idp").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["credentialId"], "oauth:idp:alice");
    assert_eq!(answer["resolvedFor"], "alice");
    assert!(!text.contains(&token), "the token stays in the sidecar");
    // Bob has not connected: nothing to resolve.
    let (status, _) = resolve_over_http(&sidecar, "bob", "idp").await;
    assert!(status.is_client_error(), "{status}");

    // The flow's cookie with a callback the provider never sent: its state is not the flow's.
    // (A replayed code is refused in the next test.)
    let value = cookie.split(';').next().unwrap();
    let replay = reqwest::Client::new()
        .get(format!(
            "{}/oauth/idp/callback?code=replayed&state=x",
            sidecar.base
        ))
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(replay).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_state", "{body}");

    // Connections show status and expiry, never a token.
    let listing = browser
        .get(format!("{}/oauth/connections?userId=alice", sidecar.base))
        .send()
        .await
        .unwrap();
    let text = listing.text().await.unwrap();
    assert!(!text.contains(&token));
    let listing: Value = serde_json::from_str(&text).unwrap();
    let of = |name: &str| {
        listing["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["provider"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(of("idp")["connected"], true);
    assert_eq!(of("idp")["refreshable"], true);
    assert_eq!(of("idp")["ref"], "user-idp");
    assert!(of("idp")["expiresAt"].is_string());
    assert!(
        of("idp")["status"]
            .as_str()
            .unwrap()
            .starts_with("expires in"),
        "{listing}"
    );
    assert_eq!(of("corp")["connected"], false);
    assert_eq!(of("kaggle")["kind"], "api-token");
    assert_eq!(
        of("kaggle")["tokenPage"],
        "https://www.kaggle.com/settings/account"
    );

    // A Kaggle-style API token, stored for alice, resolves for alice.
    let stored = browser
        .post(format!("{}/oauth/kaggle/token?userId=alice", sidecar.base))
        .json(&json!({"token": "KGAT_0123456789abcdef"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(stored).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains("KGAT_"));
    let kaggle = sidecar
        .store
        .find_by_ref(
            &CredentialRef::new("user-kaggle").unwrap(),
            &context("alice", "kaggle"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kaggle.secret.as_ref().unwrap().expose_secret(),
        "KGAT_0123456789abcdef"
    );
    let (status, _) = resolve_over_http(&sidecar, "alice", "kaggle").await;
    assert_eq!(status, StatusCode::OK);
    // API tokens are not connected with OAuth, and OAuth providers take no pasted token.
    let (status, body) = json_of(
        browser
            .get(format!(
                "{}/oauth/kaggle/connect?userId=alice",
                sidecar.base
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "api_token_provider");
    let (status, body) = json_of(
        browser
            .post(format!("{}/oauth/idp/token?userId=alice", sidecar.base))
            .json(&json!({"token": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "oauth_provider");
    // A token with a space or a control character is refused, not stored.
    let (status, body) = json_of(
        browser
            .post(format!("{}/oauth/kaggle/token?userId=bob", sidecar.base))
            .json(&json!({"token": "two words"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_token");
    assert!(!body.to_string().contains("two words"));

    // The connections file holds no token in clear.
    let file = std::fs::read_to_string(sidecar.dir.join("connections.json")).unwrap();
    assert!(file.contains("\"alice\""));
    assert!(!file.contains(&token));
    assert!(!file.contains("KGAT_"));

    // Disconnecting revokes at the provider (introspection then says inactive), then forgets.
    let (status, body) = json_of(
        browser
            .post(format!(
                "{}/oauth/idp/disconnect?userId=alice",
                sidecar.base
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revokedAtProvider"], true);
    assert_eq!(server.introspect(&token).await["active"], false);
    let (status, _) = resolve_over_http(&sidecar, "alice", "idp").await;
    assert!(status.is_client_error());
    // Kaggle offers no revocation: the token is forgotten, and the answer says it was not revoked.
    let (_, body) = json_of(
        browser
            .post(format!(
                "{}/oauth/kaggle/disconnect?userId=alice",
                sidecar.base
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["revokedAtProvider"], false);
    let file = std::fs::read_to_string(sidecar.dir.join("connections.json")).unwrap();
    assert!(!file.contains("\"alice\""), "{file}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_may_choose_its_scopes_among_those_allowed() {
    let server = AuthorizationServer::start().await;
    let sidecar = sidecar(&server, "scopes", "").await;
    let browser = browser();
    let connect = |scope: &str| {
        browser
            .get(format!(
                "{}/oauth/corp/connect?userId=alice&scope={scope}",
                sidecar.base
            ))
            .send()
    };
    let chosen = connect("openid%20crm:read").await.unwrap();
    assert_eq!(chosen.status(), StatusCode::FOUND);
    let location = url::Url::parse(chosen.headers()["location"].to_str().unwrap()).unwrap();
    let scope = location
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(scope.as_deref(), Some("openid crm:read"));
    let (status, body) = json_of(connect("openid%20crm:write").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_scope");
    assert!(
        body["error"].as_str().unwrap().contains("crm:write"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_that_do_not_belong_to_the_browsers_flow_are_refused() {
    let server = AuthorizationServer::start().await;
    let sidecar = sidecar(&server, "refusals", "").await;
    let browser = browser();
    let callback_of = |provider: &str| format!("{}/oauth/{provider}/callback", sidecar.base);

    // A wrong state.
    let (authorize, _) = start(&browser, &sidecar, "corp", "bob").await;
    let callback = server
        .follow_authorization(&authorize, &callback_of("corp"))
        .await;
    let mut url = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(&pairs);
    let (status, body) = json_of(browser.get(url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_state", "{body}");

    // An `iss` that is not the flow's issuer (a mix-up).
    let (authorize, _) = start(&browser, &sidecar, "corp", "bob").await;
    let callback = server
        .follow_authorization(&authorize, &callback_of("corp"))
        .await;
    let mut url = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" {
                "https://evil.example.com".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    assert!(
        pairs.iter().any(|(k, _)| k == "iss"),
        "the server names itself (RFC 9207)"
    );
    url.query_pairs_mut().clear().extend_pairs(&pairs);
    let (status, body) = json_of(browser.get(url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_issuer", "{body}");

    // A callback reaching a browser that started no flow (a link sent to a victim): refused.
    let (authorize, _) = start(&browser, &sidecar, "corp", "mallory").await;
    let callback = server
        .follow_authorization(&authorize, &callback_of("corp"))
        .await;
    let (status, body) = json_of(reqwest::Client::new().get(&callback).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "no_flow", "{body}");
    // ... and a flow cookie of one provider does not open another's callback.
    let (_, cookie) = start(&browser, &sidecar, "corp", "bob").await;
    let value = cookie.split(';').next().unwrap().replace("_corp=", "_idp=");
    let (status, body) = json_of(
        reqwest::Client::new()
            .get(format!("{}?code=c&state=s", callback_of("idp")))
            .header("cookie", value)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "no_flow", "{body}");

    // A replayed code: the whole callback, cookie included, sent twice.
    let (authorize, cookie) = start(&browser, &sidecar, "corp", "bob").await;
    let callback = server
        .follow_authorization(&authorize, &callback_of("corp"))
        .await;
    let value = cookie.split(';').next().unwrap().to_owned();
    let replayer = reqwest::Client::new();
    let first = replayer
        .get(&callback)
        .header("cookie", &value)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let (status, body) = json_of(
        replayer
            .get(&callback)
            .header("cookie", &value)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_grant", "{body}");

    // Nothing of the refused flows was kept: bob is connected once, by the good callback.
    let listing: Value = browser
        .get(format!("{}/oauth/connections?userId=mallory", sidecar.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listing["connections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["connected"] == false),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_caller_connects_only_as_itself() {
    let server = AuthorizationServer::start().await;
    let auth = "\n[auth]\nmode = \"api-key\"\n\n[[auth.api_keys]]\nname = \"alice-agent\"\nenv = \"ALICE_KEY\"\nuser_id = \"alice\"\n";
    let sidecar = sidecar(&server, "auth", auth).await;
    let client = browser();
    let url = |path: &str| format!("{}{path}", sidecar.base);

    let anonymous = client.get(url("/oauth/connections")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let as_alice = client
        .get(url("/oauth/idp/connect"))
        .header("x-api-key", "alice-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(as_alice.status(), StatusCode::FOUND);
    let for_bob = client
        .post(url("/oauth/idp/disconnect?userId=bob"))
        .header("x-api-key", "alice-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(for_bob.status(), StatusCode::FORBIDDEN);
    let listing: Value = client
        .get(url("/oauth/connections"))
        .header("x-api-key", "alice-key-0123456789")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["userId"], "alice");
    // The callback needs no key: the browser coming back carries its flow cookie instead.
    let callback = client
        .get(url("/oauth/idp/callback?code=c&state=s"))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn oauth_sections_are_checked() {
    let cases = [
        (
            "public_url = \"ftp://x\"\n[stores.u.providers.kaggle]\npreset = \"kaggle\"\nref = \"k\"\n",
            "public_url",
        ),
        (
            "public_url = \"http://agents.example.com\"\n[stores.u.providers.kaggle]\npreset = \"kaggle\"\nref = \"k\"\n",
            "public_url",
        ),
        (
            "public_url = \"https://a.example.com\"\n[stores.u.providers.github]\npreset = \"github\"\nref = \"g\"\nclient_id = \"i\"\n",
            "client_secret_env",
        ),
        (
            "public_url = \"https://a.example.com\"\n[stores.u.providers.corp]\npreset = \"openid\"\nref = \"c\"\nclient_id = \"i\"\n",
            "issuer",
        ),
        (
            "public_url = \"https://a.example.com\"\n[stores.u.providers.gh]\npreset = \"github\"\nref = \"g\"\nclient_id = \"i\"\nclient_secret_env = \"S\"\n",
            "preset",
        ),
        (
            "public_url = \"https://a.example.com\"\n[stores.u.providers.\"Bad Name\"]\npreset = \"kaggle\"\nref = \"k\"\n",
            "Bad Name",
        ),
        (
            "public_url = \"https://a.example.com\"\nconnections_file = \"c.json\"\n[stores.u.providers.kaggle]\npreset = \"kaggle\"\nref = \"k\"\n",
            "connections_file",
        ),
        (
            "public_url = \"https://a.example.com\"\nproviders = {}\n",
            "providers",
        ),
    ];
    for (section, field) in cases {
        let config = format!("[stores.u]\ntype = \"oauth\"\nallow_http_loopback = true\n{section}");
        let err = load_str(
            &config,
            Path::new("."),
            "t".into(),
            &|name| (name == "S").then(|| "s".into()),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(field), "{section}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_connections_kept_in_vault() {
    let server = AuthorizationServer::start().await;
    let bao = identity_test_support::OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let vault = format!(
        "\n[stores.bao]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"kv\"\n\n[stores.bao.auth]\nmethod = \"token\"\ntoken_env = \"BAO_TOKEN\"\n",
        bao.address()
    );
    let keeping = "connections_vault = \"bao\"";
    let a = sidecar_keeping(&server, "replica-a", keeping, &vault).await;
    let b = sidecar_keeping(&server, "replica-b", keeping, &vault).await;

    // Alice connects through replica A; replica B sees the connection and resolves her token.
    let (response, _) = connect(&browser(), &server, &a, "idp", "alice").await;
    assert_eq!(response.status(), StatusCode::OK);
    let listing: Value = reqwest::get(format!("{}/oauth/connections?userId=alice", b.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let idp = listing["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == "idp")
        .unwrap();
    assert_eq!(idp["connected"], true, "{listing}");
    let (status, text) = resolve_over_http(&b, "alice", "idp").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let credential = b
        .store
        .find_by_ref(
            &CredentialRef::new("user-idp").unwrap(),
            &context("alice", "idp"),
        )
        .await
        .unwrap()
        .unwrap();
    let token = credential.secret.unwrap().expose_secret().to_owned();
    assert_eq!(server.introspect(&token).await["active"], true);
    // Vault holds the connection sealed.
    let (_, keys) = bao
        .api(
            "LIST",
            "kv/metadata/agent-identity-connections/connections",
            None,
        )
        .await;
    assert_eq!(keys["data"]["keys"].as_array().unwrap().len(), 1, "{keys}");
}

#[test]
fn connections_in_vault_need_a_vault_store_and_a_key() {
    let base = "[stores.u]\ntype = \"oauth\"\npublic_url = \"https://a.example.com\"\n\
                [stores.u.providers.kaggle]\npreset = \"kaggle\"\nref = \"k\"\n";
    let cases = [
        (
            "connections_vault = \"nowhere\"\nconnections_key_env = \"K\"\n",
            "names no store",
        ),
        (
            "connections_vault = \"nowhere\"\nconnections_file = \"c.json\"\n",
            "connections_vault",
        ),
    ];
    for (lines, expected) in cases {
        let config = base.replacen("public_url", &format!("{lines}public_url"), 1);
        let key = base64::engine::general_purpose::STANDARD.encode(KEY);
        let err = load_str(
            &config,
            Path::new("."),
            "t".into(),
            &|name| (name == "K").then(|| key.clone()),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(expected), "{lines}: {err}");
    }
}
