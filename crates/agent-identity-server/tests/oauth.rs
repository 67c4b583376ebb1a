//! Users connect their own accounts through the sidecar's `/oauth/` endpoints, against a real
//! authorization server (oidc-provider, with headless login): the browser is a cookie-keeping
//! HTTP client, and resolutions then yield the user's own token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use agent_identity::{CredentialRef, CredentialStore};
use agent_identity_server::config::load_str;
use base64::Engine;
use identity_test_support::AuthorizationServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

mod oauth_support;
use oauth_support::*;

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
    let (status, body) = mint_link(&sidecar, "kaggle", json!({"userId": "alice"}), None).await;
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
    let link = |scope: &'static str| {
        mint_link(
            &sidecar,
            "corp",
            json!({"userId": "alice", "scope": scope}),
            None,
        )
    };
    let (status, body) = link("openid crm:read").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ticket = ticket_of(body["connectUrl"].as_str().unwrap());
    let chosen = confirm(&browser, &sidecar, "corp", &ticket).await;
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(chosen.headers()["location"].to_str().unwrap()).unwrap();
    let scope = location
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(scope.as_deref(), Some("openid crm:read"));
    // A scope beyond those allowed is refused when the link is asked for.
    let (status, body) = link("openid crm:write").await;
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

    // The browser cannot name the user: a connection starts only from a minted link.
    let (status, body) = json_of(
        browser
            .get(format!("{}/oauth/idp/connect?userId=mallory", sidecar.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_ticket");

    // Mallory's own link, opened by a victim from another site's page: the page shows whom the
    // connection is for, cannot be framed, and sets nothing.
    let (_, body) = mint_link(&sidecar, "idp", json!({"userId": "mallory"}), None).await;
    let link = body["connectUrl"].as_str().unwrap().to_owned();
    let ticket = ticket_of(&link);
    let page = browser
        .get(&link)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get("set-cookie").is_none());
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<strong>mallory</strong>")
    );
    // The page's button, pressed for it by another site (a form it posts, or a navigation), is
    // refused: only the page's own POST starts the flow.
    let post = |origin: Option<&'static str>, site: &'static str| {
        let mut request = browser
            .post(format!("{}/oauth/idp/connect", sidecar.base))
            .header("sec-fetch-site", site)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("ticket={ticket}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for (origin, site, code) in [
        (
            Some("https://evil.example"),
            "cross-site",
            "origin_not_allowed",
        ),
        (None, "cross-site", "cross_site_request"),
        (None, "same-site", "cross_site_request"),
    ] {
        let response = post(origin, site).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{site}");
        assert!(response.headers().get("set-cookie").is_none());
        let (_, body) = json_of(response).await;
        assert_eq!(body["code"], code, "{site}");
    }
    // The page's own POST starts it, once.
    let started = confirm(&browser, &sidecar, "idp", &ticket).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    assert_eq!(started.headers()["referrer-policy"], "no-referrer");
    for again in [
        confirm(&browser, &sidecar, "idp", &ticket).await,
        browser.get(&link).send().await.unwrap(),
    ] {
        let (status, body) = json_of(again).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "ticket_used");
    }
    // A ticket altered, or one of another provider's, does not open.
    let (_, body) = mint_link(&sidecar, "idp", json!({"userId": "mallory"}), None).await;
    let fresh = ticket_of(body["connectUrl"].as_str().unwrap());
    let mut altered = fresh.clone().into_bytes();
    altered[40] = if altered[40] == b'A' { b'B' } else { b'A' };
    for (provider, ticket) in [
        ("idp", String::from_utf8(altered).unwrap()),
        ("corp", fresh),
    ] {
        let (status, body) = json_of(confirm(&browser, &sidecar, provider, &ticket).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{provider}");
        assert_eq!(body["code"], "invalid_ticket", "{provider}");
    }

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
    // Alice's key mints links for alice only; without a key, none.
    let (status, body) = mint_link(&sidecar, "idp", json!({}), Some("alice-key-0123456789")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = mint_link(
        &sidecar,
        "idp",
        json!({"userId": "bob"}),
        Some("alice-key-0123456789"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "caller_user_mismatch");
    let (status, _) = mint_link(&sidecar, "idp", json!({"userId": "alice"}), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A body that is not a link request says what is wrong.
    let (status, body) = mint_link(
        &sidecar,
        "idp",
        json!({"user": "alice"}),
        Some("alice-key-0123456789"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("user"), "{body}");
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

/// An API of this test that accepts any bearer token but the ones it was told to refuse (each
/// once), and records every token it saw. (The provider's real API cannot be reached here.)
async fn users_api() -> (String, Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<String>>>) {
    use axum::response::IntoResponse;
    let seen = Arc::<Mutex<Vec<String>>>::default();
    let refuse = Arc::<Mutex<Vec<String>>>::default();
    let (recorder, refusals) = (seen.clone(), refuse.clone());
    let me = move |headers: http::HeaderMap| {
        let (recorder, refusals) = (recorder.clone(), refusals.clone());
        async move {
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("")
                .to_owned();
            recorder.lock().unwrap().push(token.clone());
            let mut refusals = refusals.lock().unwrap();
            if let Some(index) = refusals.iter().position(|t| *t == token) {
                refusals.remove(index);
                return http::StatusCode::UNAUTHORIZED.into_response();
            }
            axum::Json(json!({"ok": true})).into_response()
        }
    };
    let app = axum::Router::new().route("/me", axum::routing::get(me));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), seen, refuse)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_through_one_upstream_each_get_their_own_token_refreshed_when_refused() {
    let server = AuthorizationServer::start().await;
    let (api, seen, refuse) = users_api().await;
    let upstream = format!(
        "\n[upstreams.idp-api]\nbase_url = \"{api}\"\nprovider = \"idp\"\nallow_http_loopback = true\n"
    );
    let sidecar = sidecar(&server, "proxy", &upstream).await;
    for user in ["alice", "bob"] {
        let (response, _) = connect(&browser(), &server, &sidecar, "idp", user).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let call = |user: &'static str| {
        let url = format!("{}/proxy/idp-api/me", sidecar.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .header("x-agent-identity-user", user)
                .send()
                .await
                .unwrap()
        }
    };

    // Each user's call carries that user's own access token.
    for user in ["alice", "bob"] {
        let response = call(user).await;
        assert_eq!(response.status(), StatusCode::OK);
        let token = seen.lock().unwrap().last().unwrap().clone();
        assert!(!response.text().await.unwrap().contains(&token));
        let introspected = server.introspect(&token).await;
        assert_eq!(introspected["active"], true, "{introspected}");
        assert_eq!(introspected["sub"], user, "{introspected}");
    }

    // The API refuses Alice's token once: the connection refreshes at the provider and the call
    // goes again with the fresh token, which is hers and active.
    let refused = seen.lock().unwrap()[0].clone();
    refuse.lock().unwrap().push(refused.clone());
    let response = call("alice").await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens.len(), 4, "one refused call and one retry");
    assert_eq!(tokens[2], refused);
    assert_ne!(tokens[3], refused);
    let introspected = server.introspect(&tokens[3]).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["sub"], "alice", "{introspected}");
    // Bob's connection was not touched.
    let response = call("bob").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap()[4], tokens[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_has_not_consented_gets_a_connect_link_and_then_the_credential() {
    let server = AuthorizationServer::start().await;
    let crm = "\n[[rules]]\nid = \"corp-crm\"\ncredentialRef = \"user-corp\"\ncredentialKind = \"user-delegated\"\nstore = \"users\"\nmatchProvider = \"corp\"\npriority = 3\nrequireScopes = [\"crm:read\"]\n";
    let sidecar = sidecar(&server, "consent", crm).await;
    let browser = browser();
    for (provider, scopes) in [("idp", json!([])), ("corp", json!(["crm:read"]))] {
        // Bob has connected nothing: the denial says what to connect, with a link for bob.
        let (status, text) = resolve_over_http(&sidecar, "bob", provider).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        let denial: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(denial["code"], "consent_required", "{denial}");
        assert_eq!(denial["provider"], provider);
        assert_eq!(denial["scopes"], scopes);
        let link = denial["connectUrl"].as_str().unwrap().to_owned();
        assert!(link.starts_with(&format!(
            "{}/oauth/{provider}/connect?ticket=",
            sidecar.base
        )));

        // Bob follows it: the page names him, he confirms, logs in and consents.
        let page = browser
            .get(&link)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("<strong>bob</strong>"), "{page}");
        let started = confirm(&browser, &sidecar, provider, &ticket_of(&link)).await;
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        let authorize = started.headers()["location"].to_str().unwrap().to_owned();
        let callback = server
            .follow_authorization(
                &authorize,
                &format!("{}/oauth/{provider}/callback", sidecar.base),
            )
            .await;
        let (status, body) = json_of(browser.get(&callback).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["userId"], "bob");

        // The same request is granted now.
        let (status, text) = resolve_over_http(&sidecar, "bob", provider).await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
}

/// In a real browser (Debian's headless Chromium): the user follows a connect link, confirms,
/// logs in and consents at oidc-provider, and is connected; pages of another site, and of
/// another origin on the same site, that submit the same form with a ticket are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_the_link_connects_and_other_origins_cannot_use_a_ticket() {
    let server = AuthorizationServer::start().await;
    let sidecar = sidecar(&server, "chromium", "").await;
    let (_, minted) = mint_link(&sidecar, "idp", json!({"userId": "bob"}), None).await;
    let link = minted["connectUrl"].as_str().unwrap().to_owned();
    let (_, minted) = mint_link(&sidecar, "idp", json!({"userId": "carol"}), None).await;
    let foreign = minted["connectUrl"].as_str().unwrap().to_owned();

    let seen = identity_test_support::browse(
        "connect.mjs",
        &[("LINK", &link), ("FOREIGN_LINK", &foreign)],
    )
    .await;
    assert!(
        seen["confirmation"].as_str().unwrap().contains("bob"),
        "{seen}"
    );
    let connected: Value = serde_json::from_str(seen["connected"].as_str().unwrap()).unwrap();
    assert_eq!(connected["userId"], "bob", "{seen}");
    let (status, text) = resolve_over_http(&sidecar, "bob", "idp").await;
    assert_eq!(status, StatusCode::OK, "{text}");

    for from in ["from_localhost", "from_127.0.0.1"] {
        assert_eq!(seen[from]["status"], 403, "{from}: {seen}");
    }
    // Carol's ticket was not used: she is not connected, and her link still works.
    let (status, _) = resolve_over_http(&sidecar, "carol", "idp").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let page = browser().get(&foreign).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

/// The sidecar's pages in a real browser (Debian's headless Chromium) against oidc-provider: bob
/// signs in, approves a call an agent made for alice (which then passes, once), connects and
/// disconnects a provider; pages of another site or another origin cannot approve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_people_sign_in_approve_calls_and_manage_connections() {
    // A bank API of this test (the real ones cannot be reached here), counting calls.
    let calls = Arc::new(Mutex::new(0u32));
    let counted = calls.clone();
    let bank = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            *counted.lock().unwrap() += 1;
            axum::Json(json!({"ok": true}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bank_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, bank).await.unwrap() });

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/ui/callback");
    let server =
        AuthorizationServer::start_with_env(&[("FIXTURE_UI_REDIRECT_URI", &redirect)]).await;
    let issuer = server.issuer();
    let pages = format!(
        r#"
[stores.bank]
type = "memory"
credentials = [{{ id = "cred-bank", kind = "fixed", name = "Bank", scope = "transfers", status = "active", ref = "bank-prod" }}]
secrets = {{ bank-prod = {{ env = "ALICE_KEY" }} }}

[[rules]]
id = "bank"
credentialRef = "bank-prod"
store = "bank"
matchProvider = "bank"
priority = 10
requireApproval = {{}}

[upstreams.bank]
base_url = "{bank_url}"
provider = "bank"
methods = ["POST"]
path_prefixes = ["/transfers"]
allow_http_loopback = true

[approvals]

[web]
public_url = "{base}"
issuer = "{issuer}"
client_id = "agent-identity-ui"
client_secret_env = "UI_SECRET"
approvers = ["bob"]
allow_http_loopback = true
"#
    );
    let sidecar = sidecar_on(
        &server,
        "pages",
        "connections_file = \"connections.json\"",
        &pages,
        port,
    )
    .await;
    let transfer = |body: &'static str| {
        let url = format!("{base}/proxy/bank/transfers");
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("x-agent-identity-user", "alice")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            json_of(response).await
        }
    };
    let (_, held) = transfer(r#"{"amount": 10}"#).await;
    let approval = held["approvalId"].as_str().unwrap().to_owned();
    let (_, other) = transfer(r#"{"amount": 99999}"#).await;
    let other = other["approvalId"].as_str().unwrap().to_owned();

    let seen = identity_test_support::browse(
        "pages.mjs",
        &[
            ("BASE", &base),
            ("USER", "bob"),
            ("APPROVAL", &approval),
            ("OTHER_APPROVAL", &other),
            ("PROVIDER", "idp"),
        ],
    )
    .await;
    assert!(
        seen["home"].as_str().unwrap().contains("Signed in as bob"),
        "{seen}"
    );
    assert!(
        seen["pending"]
            .as_str()
            .unwrap()
            .contains("POST bank/transfers for alice"),
        "{seen}"
    );
    assert_eq!(seen["approved"], "granted", "{seen}");
    assert_eq!(seen["before_connect"], "not connected", "{seen}");
    assert!(
        seen["confirmation"].as_str().unwrap().contains("bob"),
        "{seen}"
    );
    assert!(
        seen["after_connect"]
            .as_str()
            .unwrap()
            .starts_with("connected"),
        "{seen}"
    );
    assert_eq!(seen["after_disconnect"], "not connected", "{seen}");
    for from in ["from_localhost", "from_127.0.0.1"] {
        assert_eq!(seen[from]["status"], 403, "{from}: {seen}");
    }

    // The approved call passes, once; the other is still held.
    let (status, _) = transfer(r#"{"amount": 10}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(*calls.lock().unwrap(), 1);
    let (status, still) = transfer(r#"{"amount": 99999}"#).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(still["approvalId"], other.as_str(), "{still}");
    // Bob's connection is gone from the store too.
    assert!(sidecar.store.stored("bob", "idp").await.unwrap().is_none());
}

/// A policy may forbid a user to connect a provider: no link is made for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_forbids_connecting_refuses_the_link() {
    let server = AuthorizationServer::start().await;
    let file = std::env::temp_dir().join(format!(
        "agent-identity-connect-{}.cedar",
        std::process::id()
    ));
    std::fs::write(
        &file,
        r#"@id("no-idp-for-mallory")
           forbid(principal == User::"mallory", action == Action::"connect", resource == Provider::"idp");"#,
    )
    .unwrap();
    let extra = format!("\n[policies]\nfiles = [{:?}]\n", file.display().to_string());
    let sidecar = sidecar(&server, "connect-policy", &extra).await;
    let (status, minted) = mint_link(&sidecar, "idp", json!({"userId": "bob"}), None).await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    let (status, refused) = mint_link(&sidecar, "idp", json!({"userId": "mallory"}), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "not_permitted");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("no-idp-for-mallory"),
        "{refused}"
    );
    // Her consent denial carries no link either.
    let (status, text) = resolve_over_http(&sidecar, "mallory", "idp").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let denial: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(denial["code"], "consent_required", "{denial}");
    assert!(denial.get("connectUrl").is_none(), "{denial}");
    std::fs::remove_file(&file).unwrap();
}
