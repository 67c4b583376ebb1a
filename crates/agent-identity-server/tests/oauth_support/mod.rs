//! The oauth tests' sidecar (an `oauth` store against oidc-provider, served in process), its
//! browser, and the connect flow.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "a helper module of the oauth tests"
)]

use std::path::PathBuf;
use std::sync::Arc;

use agent_identity::identity_dcr::{ClientMetadata, Dcr};
use agent_identity::identity_http::OutboundPolicy;
use agent_identity::{RequestContext, ResourceKind};
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::cli::serve::Server;
use agent_identity_server::config::load_str;
use base64::Engine;
use identity_test_support::AuthorizationServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const KEY: [u8; 32] = [42; 32];

pub(crate) struct Sidecar {
    pub(crate) base: String,
    pub(crate) store: Arc<agent_identity::identity_oauth::DelegatedTokenStore>,
    pub(crate) dir: PathBuf,
    pub(crate) stop: Option<tokio::sync::oneshot::Sender<()>>,
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
pub(crate) fn free_port() -> u16 {
    identity_test_support::free_port()
}

/// A sidecar with an `oauth` store: `idp` (a client it registers itself), `corp` (an OpenID
/// provider with a pre-registered client) and `kaggle` (API tokens), connections in a sealed
/// file, and `extra` appended to the configuration.
pub(crate) async fn sidecar(server: &AuthorizationServer, name: &str, extra: &str) -> Sidecar {
    sidecar_keeping(
        server,
        name,
        "connections_file = \"connections.json\"",
        extra,
    )
    .await
}

/// [`sidecar`], with `connections` saying where connections are kept.
pub(crate) async fn sidecar_keeping(
    server: &AuthorizationServer,
    name: &str,
    connections: &str,
    extra: &str,
) -> Sidecar {
    sidecar_on(server, name, connections, extra, free_port()).await
}

/// [`sidecar_keeping`], on `port` (chosen before the authorization server starts, when it must
/// know the sidecar's address).
pub(crate) async fn sidecar_on(
    server: &AuthorizationServer,
    name: &str,
    connections: &str,
    extra: &str,
    port: u16,
) -> Sidecar {
    let base = format!("http://127.0.0.1:{port}");
    let dcr = Dcr::new(OutboundPolicy::default().allow_http_loopback(true)).unwrap();
    let metadata = dcr.discover(server.issuer()).await.unwrap();
    let corp = dcr
        .register(
            &metadata,
            &ClientMetadata::web_app(
                "corp-app",
                format!("{base}/oauth/corp/callback"),
                "openid offline_access crm:read",
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
        "UI_SECRET" => Some("agent-identity-ui-secret".into()),
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
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A connect link for `user`, as the backend mints it (`POST /oauth/{provider}/link`, with
/// `key` when the sidecar authenticates): the answer's status and body.
pub(crate) async fn mint_link(
    sidecar: &Sidecar,
    provider: &str,
    body: Value,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/oauth/{provider}/link", sidecar.base))
        .json(&body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    json_of(request.send().await.unwrap()).await
}

/// The ticket of a connect link.
pub(crate) fn ticket_of(link: &str) -> String {
    reqwest::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "ticket")
        .unwrap()
        .1
        .into_owned()
}

/// The confirmation's POST, as the page's button sends it (same origin).
pub(crate) async fn confirm(
    browser: &reqwest::Client,
    sidecar: &Sidecar,
    provider: &str,
    ticket: &str,
) -> reqwest::Response {
    browser
        .post(format!("{}/oauth/{provider}/connect", sidecar.base))
        .header("origin", &sidecar.base)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("ticket={ticket}"))
        .send()
        .await
        .unwrap()
}

/// Starts a connection of `user` to `provider` as it happens: the backend mints a link, the
/// browser opens it and confirms. The provider's authorize URL, and the flow cookie as set.
pub(crate) async fn start(
    browser: &reqwest::Client,
    sidecar: &Sidecar,
    provider: &str,
    user: &str,
) -> (String, String) {
    let (status, body) = mint_link(
        sidecar,
        provider,
        json!({"userId": user, "loginHint": user}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let link = body["connectUrl"].as_str().unwrap().to_owned();
    let page = browser.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("<strong>{user}</strong>")), "{page}");
    let response = confirm(browser, sidecar, provider, &ticket_of(&link)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
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
pub(crate) async fn connect(
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

pub(crate) fn context(user: &str, provider: &str) -> RequestContext {
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

pub(crate) async fn resolve_over_http(
    sidecar: &Sidecar,
    user: &str,
    provider: &str,
) -> (StatusCode, String) {
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

pub(crate) async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}
