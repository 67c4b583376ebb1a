//! Caller authentication: each mode, and each way a caller can be wrong.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_identity_server::app::app;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::config::{LoadError, load_str};
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt;

const STORE: &str = r#"
[stores.default]
type = "memory"

[[stores.default.credentials]]
id = "cred-alice"
kind = "user-delegated"
status = "active"
ref = "alice"

[[stores.default.credentials]]
id = "cred-bob"
kind = "user-delegated"
status = "active"
ref = "bob"

[[rules]]
id = "alice"
credentialRef = "alice"
priority = 1
matchUserId = "alice"

[[rules]]
id = "bob"
credentialRef = "bob"
priority = 1
matchUserId = "bob"
"#;

const SERVICE_KEY: &str = "svc-key-0123456789abcdef";
const ALICE_KEY: &str = "alice-key-0123456789abcdef";

async fn app_for(config: &str, base: &Path) -> axum::Router {
    let env = |name: &str| (name == "ALICE_API_KEY").then(|| ALICE_KEY.to_owned());
    app_with(config, base, &env).await
}

async fn app_with(config: &str, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> axum::Router {
    let loaded = load_str(config, base, "test".into(), env, None).unwrap();
    let state = loaded
        .into_state(Arc::new(Metrics::new()), "127.0.0.1:3001".parse().unwrap())
        .await
        .unwrap();
    app(state)
}

async fn resolve_as(
    app: &axum::Router,
    user: &str,
    authorization: Option<(&str, String)>,
) -> (StatusCode, Value, http::HeaderMap) {
    post_as(app, "/api/resolve", "openai", user, authorization).await
}

/// POSTs a request context for `user` and `provider` to `path`.
async fn post_as(
    app: &axum::Router,
    path: &str,
    provider: &str,
    user: &str,
    authorization: Option<(&str, String)>,
) -> (StatusCode, Value, http::HeaderMap) {
    let body = json!({"userId": user, "resourceId": "r", "resourceKind": "personal", "provider": provider,
                      "model": "gpt-4o", "action": "read", "traceId": "t"});
    post_body(app, path, &body, authorization).await
}

/// Resolves for Alice (`openai`), the body naming workload `spiffe` when given.
async fn resolve_claiming(
    app: &axum::Router,
    authorization: Option<(&str, String)>,
    spiffe: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"userId": "alice", "resourceId": "r", "resourceKind": "personal",
        "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "t"});
    if let Some(spiffe) = spiffe {
        body["spiffeId"] = json!(spiffe);
    }
    let (status, body, _) = post_body(app, "/api/resolve", &body, authorization).await;
    (status, body)
}

/// POSTs `body` to `path`: the status, the JSON answer and the headers.
async fn post_body(
    app: &axum::Router,
    path: &str,
    body: &Value,
    authorization: Option<(&str, String)>,
) -> (StatusCode, Value, http::HeaderMap) {
    let mut request = Request::post(path)
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json");
    if let Some((name, value)) = authorization {
        request = request.header(name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), headers)
}

fn bearer(token: impl Into<String>) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {}", token.into())))
}

#[tokio::test]
async fn api_keys_are_checked_and_may_bind_a_user() {
    let digest = hex_sha256(SERVICE_KEY);
    let config = format!(
        "{STORE}\n[auth]\nmode = \"api-key\"\n\n[[auth.api_keys]]\nname = \"backend\"\nsha256 = \"{digest}\"\nany_user = true\n\n\
         [[auth.api_keys]]\nname = \"alice-agent\"\nenv = \"ALICE_API_KEY\"\nuser_id = \"alice\"\n"
    );
    let app = app_for(&config, Path::new(".")).await;

    let (status, body, headers) = resolve_as(&app, "alice", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthenticated");
    assert_eq!(headers["www-authenticate"], "Bearer");

    let (status, body, _) = resolve_as(&app, "alice", bearer("not-the-key-at-all")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !body.to_string().contains("not-the-key"),
        "the key was echoed: {body}"
    );

    // /metrics is behind the same authentication; /health is not.
    let get = |path: &'static str, key: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut request = Request::get(path).header("host", "127.0.0.1:3001");
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            app.oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get("/metrics", None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get("/metrics", Some(SERVICE_KEY)).await, StatusCode::OK);
    assert_eq!(get("/health", None).await, StatusCode::OK);

    // A service key may resolve for any user, by either header.
    assert_eq!(
        resolve_as(&app, "alice", bearer(SERVICE_KEY)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        resolve_as(&app, "bob", Some(("x-api-key", SERVICE_KEY.into())))
            .await
            .0,
        StatusCode::OK
    );

    // A key bound to alice resolves for alice only.
    assert_eq!(
        resolve_as(&app, "alice", bearer(ALICE_KEY)).await.0,
        StatusCode::OK
    );
    let (status, body, _) = resolve_as(&app, "bob", bearer(ALICE_KEY)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "caller_user_mismatch");

    // Health stays open to probes.
    let response = app
        .clone()
        .oneshot(
            Request::get("/health")
                .header("host", "127.0.0.1:3001")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---- JWT ------------------------------------------------------------------------------------------

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "agent-identity";

struct Keys {
    signing: SigningKey,
    kid: &'static str,
}

impl Keys {
    fn new(seed: u8, kid: &'static str) -> Self {
        Self {
            signing: SigningKey::from_bytes(&[seed; 32]),
            kid,
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes())})
    }

    fn token(&self, claims: &Value) -> String {
        let der = self.signing.to_pkcs8_der().unwrap();
        let key = EncodingKey::from_ed_der(der.as_bytes());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.into());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 300})
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agent-identity-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn jwt_config(source: &str) -> String {
    format!(
        "{STORE}\n[auth]\nmode = \"jwt\"\n\n[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = [\"{AUDIENCE}\"]\n\
         algorithms = [\"EdDSA\", \"ES256\"]\n{source}\n"
    )
}

#[tokio::test]
async fn jwts_are_verified_against_the_jwks_and_their_subject_is_the_user() {
    let keys = Keys::new(7, "key-1");
    let dir = temp_dir("jwks-file");
    std::fs::write(
        dir.join("jwks.json"),
        json!({"keys": [keys.jwk()]}).to_string(),
    )
    .unwrap();
    let app = app_for(&jwt_config("jwks_file = \"jwks.json\""), &dir).await;

    let (status, body, _) = resolve_as(&app, "alice", bearer(keys.token(&claims("alice")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resolvedFor"], "alice");

    let (status, body, _) = resolve_as(&app, "alice", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );

    // A valid token for bob cannot resolve alice's credential.
    let (status, body, _) = resolve_as(&app, "alice", bearer(keys.token(&claims("bob")))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "caller_user_mismatch");

    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 3600);
    let mut wrong_audience = claims("alice");
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = claims("alice");
    wrong_issuer["iss"] = json!("https://evil.example");
    let mut no_subject = claims("alice");
    no_subject.as_object_mut().unwrap().remove("sub");
    let stranger = Keys::new(9, "key-1");
    let unknown_kid = Keys::new(9, "key-2");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims("alice").to_string())
    );
    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        &EncodingKey::from_secret(b"guessable"),
    )
    .unwrap();
    let cases = [
        ("expired", keys.token(&expired), "expired"),
        ("wrong audience", keys.token(&wrong_audience), "audience"),
        ("wrong issuer", keys.token(&wrong_issuer), "issuer"),
        ("no subject", keys.token(&no_subject), "`sub`"),
        (
            "signed by another key with the same kid",
            stranger.token(&claims("alice")),
            "signature",
        ),
        (
            "signed by an unknown key",
            unknown_kid.token(&claims("alice")),
            "unknown key",
        ),
        ("alg none", unsigned, "not a well-formed JWT"),
        ("HMAC", hmac, "not accepted"),
        ("garbage", "abc.def".into(), "not a well-formed JWT"),
    ];
    for (case, token, reason) in cases {
        let (status, body, headers) = resolve_as(&app, "alice", bearer(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(headers["www-authenticate"], "Bearer", "{case}");
        assert!(
            body["error"].as_str().unwrap().contains(reason),
            "{case}: {body}"
        );
    }
}

/// A JWKS served over loopback HTTP: the issuer's key document is static, so a few lines of axum
/// stand in for the issuer here (the token exchange tests run a real authorization server).
#[tokio::test]
async fn the_jwks_can_come_from_a_url() {
    let keys = Keys::new(11, "url-key");
    let jwks = json!({"keys": [keys.jwk()]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let issuer = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, issuer).await.unwrap() });

    let url = format!("http://{address}/jwks");
    let app = app_for(
        &jwt_config(&format!("jwks_url = \"{url}\"\nallow_http_loopback = true")),
        Path::new("."),
    )
    .await;
    let (status, body, _) = resolve_as(&app, "bob", bearer(keys.token(&claims("bob")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Plain HTTP is refused unless allowed, and never off loopback.
    let refused = load_str(
        &jwt_config(&format!("jwks_url = \"{url}\"")),
        Path::new("."),
        "t".into(),
        &|_| None,
        None,
    );
    assert!(refused.unwrap_err().to_string().contains("jwt.jwks_url"));
    let remote = load_str(
        &jwt_config("jwks_url = \"http://issuer.example/jwks\"\nallow_http_loopback = true"),
        Path::new("."),
        "t".into(),
        &|_| None,
        None,
    );
    let err = remote.unwrap_err().to_string();
    assert!(
        err.contains("plain http") && err.contains("not loopback"),
        "{err}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_cause_one_fetch_at_a_time_and_back_off_while_the_issuer_fails() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let old = Keys::new(21, "old-key");
    let new = Keys::new(22, "new-key");
    let (fetches, failing) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    // A JWKS endpoint of this test that can be made to fail (a real issuer cannot be).
    let (counter, fail) = (fetches.clone(), failing.clone());
    let both = json!({"keys": [old.jwk(), new.jwk()]});
    let only_old = json!({"keys": [old.jwk()]});
    let issuer = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (counter, fail) = (counter.clone(), fail.clone());
            let (both, only_old) = (both.clone(), only_old.clone());
            async move {
                let served = counter.fetch_add(1, Ordering::SeqCst);
                if fail.load(Ordering::SeqCst) {
                    return Err(StatusCode::INTERNAL_SERVER_ERROR);
                }
                Ok(axum::Json(if served == 0 { only_old } else { both }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, issuer).await.unwrap() });
    let app = app_for(
        &jwt_config(&format!(
            "jwks_url = \"http://{address}/jwks\"\nallow_http_loopback = true\njwks_min_refetch_secs = 0"
        )),
        Path::new("."),
    )
    .await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched once at start");

    // The issuer fails; 200 tokens naming a key not yet known arrive at once.
    failing.store(true, Ordering::SeqCst);
    let calls = (0..200).map(|_| resolve_as(&app, "alice", bearer(new.token(&claims("alice")))));
    let answers = futures::future::join_all(calls).await;
    assert!(
        answers
            .iter()
            .all(|(status, _, _)| *status == StatusCode::UNAUTHORIZED)
    );
    let during = fetches.load(Ordering::SeqCst) - 1;
    assert!((1..=3).contains(&during), "{during} fetches");
    // Tokens of the known key still pass meanwhile.
    let (status, _, _) = resolve_as(&app, "alice", bearer(old.token(&claims("alice")))).await;
    assert_eq!(status, StatusCode::OK);

    // The issuer recovers: once the pause after the failure has passed, the new key is fetched.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body, _) = resolve_as(&app, "alice", bearer(new.token(&claims("alice")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(fetches.load(Ordering::SeqCst), 1 + during + 1);
    server.abort();
}

fn load_error(config: &str) -> LoadError {
    load_str(config, Path::new("."), "t".into(), &|_| None, None).unwrap_err()
}

#[test]
fn an_unauthenticated_server_is_not_exposed_by_accident() {
    let exposed = format!("{STORE}\n[server]\nlisten = \"0.0.0.0:3001\"\n");
    assert!(
        load_error(&exposed)
            .to_string()
            .contains("allow_unauthenticated")
    );
    let allowed =
        format!("{STORE}\n[server]\nlisten = \"0.0.0.0:3001\"\nallow_unauthenticated = true\n");
    assert!(load_error(&allowed).to_string().contains("allowed_hosts"));
    let named = allowed.replace(
        "allow_unauthenticated = true\n",
        "allow_unauthenticated = true\nallowed_hosts = [\"sidecar.internal:3001\"]\n",
    );
    assert!(load_str(&named, Path::new("."), "t".into(), &|_| None, None).is_ok());
    let keyed = format!(
        "{STORE}\n[server]\nlisten = \"0.0.0.0:3001\"\n[auth]\nmode = \"api-key\"\n[[auth.api_keys]]\nname = \"k\"\nsha256 = \"{}\"\nany_user = true\n",
        hex_sha256(SERVICE_KEY)
    );
    assert!(load_str(&keyed, Path::new("."), "t".into(), &|_| None, None).is_ok());
}

#[test]
fn auth_mistakes_are_configuration_errors() {
    for (config, field) in [
        ("[auth]\nmode = \"api-key\"\n", "api_keys"),
        (
            "[auth]\nmode = \"api-key\"\n[[auth.api_keys]]\nname = \"k\"\nsha256 = \"xyz\"\n",
            "api_keys[0]",
        ),
        (
            "[auth]\nmode = \"api-key\"\n[[auth.api_keys]]\nname = \"k\"\nenv = \"UNSET_VARIABLE\"\n",
            "api_keys[0]",
        ),
        ("[auth]\nmode = \"jwt\"\n", "jwt"),
        (
            "[auth]\nmode = \"jwt\"\n[auth.jwt]\nissuer = \"i\"\naudience = [\"a\"]\nalgorithms = [\"HS256\"]\njwks_file = \"x\"\n",
            "jwt.algorithms",
        ),
        (
            "[auth]\nmode = \"jwt\"\n[auth.jwt]\nissuer = \"i\"\naudience = []\njwks_file = \"x\"\n",
            "jwt.audience",
        ),
        (
            "[auth]\nmode = \"none\"\n[[auth.api_keys]]\nname = \"k\"\nsha256 = \"00\"\n",
            "mode",
        ),
        (
            "[auth]\nmode = \"jwt\"\n[auth.jwt]\nissuer = \"i\"\naudience = [\"a\"]\njwks_file = \"x\"\nreceive_secrets_scope = \"a b\"\n",
            "jwt.receive_secrets_scope",
        ),
        (
            "[auth]\nmode = \"none\"\n[auth.workload_jwt]\ntrust_domain = \"prod\"\naudience = [\"a\"]\njwks_file = \"x\"\n",
            "workload_jwt",
        ),
        (
            "[auth]\nmode = \"jwt\"\n[auth.jwt]\nissuer = \"i\"\naudience = [\"a\"]\njwks_file = \"x\"\n[auth.workload_jwt]\naudience = [\"a\"]\njwks_file = \"x\"\n",
            "workload_jwt.trust_domain",
        ),
    ] {
        let err = load_error(&format!("{STORE}\n{config}"));
        assert!(
            err.errors.iter().any(|e| e.field.as_deref() == Some(field)),
            "{field}: {err}"
        );
    }
}

// ---- delivery -------------------------------------------------------------------------------------

/// Alice's credential may be delivered (its rule says `reveal`); Bob's is proxy-only.
const DELIVERY_STORE: &str = r#"
[stores.default]
type = "memory"
credentials = [
  { id = "cred-alice", kind = "user-delegated", status = "active", ref = "alice" },
  { id = "cred-bob", kind = "user-delegated", status = "active", ref = "bob" },
]
secrets = { alice = { env = "ALICE_SECRET" }, bob = { env = "BOB_SECRET" } }

[[rules]]
id = "alice"
credentialRef = "alice"
priority = 1
matchUserId = "alice"
delivery = "reveal"

[[rules]]
id = "bob"
credentialRef = "bob"
priority = 1
matchUserId = "bob"
"#;

const ALICE_SECRET: &str = "ghp-alice-delivery-canary";
const BOB_SECRET: &str = "ghp-bob-delivery-canary";
const DEPLOYER_KEY: &str = "deployer-key-0123456789abcdef";

async fn delivery_app(auth: &str, base: &Path) -> axum::Router {
    let env = |name: &str| match name {
        "ALICE_SECRET" => Some(ALICE_SECRET.to_owned()),
        "BOB_SECRET" => Some(BOB_SECRET.to_owned()),
        "DEPLOYER_KEY" => Some(DEPLOYER_KEY.to_owned()),
        "SERVICE_KEY" => Some(SERVICE_KEY.to_owned()),
        _ => None,
    };
    app_with(&format!("{DELIVERY_STORE}\n{auth}"), base, &env).await
}

async fn deliver_as(
    app: &axum::Router,
    user: &str,
    authorization: Option<(&str, String)>,
) -> (StatusCode, Value, http::HeaderMap) {
    post_as(app, "/api/deliver", "github", user, authorization).await
}

#[tokio::test]
async fn a_secret_is_delivered_only_to_a_permitted_caller_for_a_revealing_rule() {
    let auth = "[auth]\nmode = \"api-key\"\n\n[[auth.api_keys]]\nname = \"backend\"\nenv = \"SERVICE_KEY\"\nany_user = true\n\n\
                [[auth.api_keys]]\nname = \"deployer\"\nenv = \"DEPLOYER_KEY\"\nany_user = true\npermissions = [\"receive-secrets\"]\n";
    let app = delivery_app(auth, Path::new(".")).await;

    let (status, body, headers) = deliver_as(&app, "alice", bearer(DEPLOYER_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], ALICE_SECRET);
    assert_eq!(body["credentialId"], "cred-alice");
    assert_eq!(body["resolvedFor"], "alice");
    assert_eq!(headers["cache-control"], "no-store");

    // GitHub's `token` scheme authenticates as well as `Bearer`.
    let token_scheme = Some(("authorization", format!("token {DEPLOYER_KEY}")));
    assert_eq!(
        deliver_as(&app, "alice", token_scheme).await.0,
        StatusCode::OK
    );

    // A caller without the permission gets nothing, even for a revealing rule.
    let (status, body, headers) = deliver_as(&app, "alice", bearer(SERVICE_KEY)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "caller_may_not_receive_secrets");
    assert_eq!(headers["cache-control"], "no-store");
    // A proxy-only credential is not delivered to anyone.
    let (status, body, _) = deliver_as(&app, "bob", bearer(DEPLOYER_KEY)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "credential_not_deliverable");
    // A denial is the resolve endpoint's.
    let (status, body, _) = deliver_as(&app, "carol", bearer(DEPLOYER_KEY)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "no_matching_rule");
    // Unauthenticated: 401 before anything else.
    assert_eq!(
        deliver_as(&app, "alice", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    for user in ["alice", "bob", "carol"] {
        let (_, body, _) = deliver_as(&app, user, bearer(SERVICE_KEY)).await;
        let text = body.to_string();
        assert!(
            !text.contains(ALICE_SECRET) && !text.contains(BOB_SECRET),
            "{text}"
        );
    }

    // With no authentication at all, nobody may receive a secret.
    let open = delivery_app("[auth]\nmode = \"none\"\n", Path::new(".")).await;
    let (status, body, _) = deliver_as(&open, "alice", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "caller_may_not_receive_secrets");
}

#[tokio::test]
async fn a_jwt_receives_secrets_only_with_the_configured_scope() {
    let keys = Keys::new(11, "delivery-key");
    let dir = temp_dir("delivery-jwks");
    std::fs::write(
        dir.join("jwks.json"),
        json!({"keys": [keys.jwk()]}).to_string(),
    )
    .unwrap();
    let auth = format!(
        "[auth]\nmode = \"jwt\"\n\n[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = [\"{AUDIENCE}\"]\n\
         algorithms = [\"EdDSA\"]\njwks_file = \"jwks.json\"\nreceive_secrets_scope = \"secrets:receive\"\n"
    );
    let app = delivery_app(&auth, &dir).await;
    let with = |scope: Value, claim: &str| {
        let mut claims = claims("alice");
        claims[claim] = scope;
        bearer(keys.token(&claims))
    };

    let (status, body, _) = deliver_as(
        &app,
        "alice",
        with(json!("openid secrets:receive"), "scope"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], ALICE_SECRET);
    let (status, _, _) = deliver_as(&app, "alice", with(json!(["secrets:receive"]), "scp")).await;
    assert_eq!(status, StatusCode::OK);

    // A scope that only starts the same, or none, is not the permission.
    for (scope, claim) in [
        (json!("openid secrets:receive-all"), "scope"),
        (json!("openid"), "scope"),
        (json!(["secrets"]), "scp"),
    ] {
        let (status, body, _) = deliver_as(&app, "alice", with(scope, claim)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["code"], "caller_may_not_receive_secrets");
    }
    // The token's subject binds the user: Alice's token cannot take Bob's secret.
    let (status, body, _) = deliver_as(&app, "bob", with(json!("secrets:receive"), "scope")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "caller_user_mismatch");
}

#[test]
fn an_unknown_permission_is_a_configuration_error() {
    let err = load_error(&format!(
        "{STORE}\n[auth]\nmode = \"api-key\"\n[[auth.api_keys]]\nname = \"k\"\nsha256 = \"{}\"\npermissions = [\"everything\"]\n",
        hex_sha256("k")
    ));
    assert!(err.to_string().contains("everything"), "{err}");
}

// ---- workloads ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_may_name_only_the_workload_the_caller_proved() {
    const BILLING_KEY: &str = "billing-key-0123456789abcdef";
    let config = format!(
        "{STORE}
[[stores.default.credentials]]
id = \"cred-billing\"
kind = \"fixed\"
status = \"active\"
ref = \"billing\"

[[rules]]
id = \"billing-workload\"
credentialRef = \"billing\"
priority = 5
matchSpiffeId = \"spiffe://prod/billing\"

[auth]
mode = \"api-key\"

[[auth.api_keys]]
name = \"billing\"
env = \"BILLING_KEY\"
any_user = true
spiffe_id = \"spiffe://prod/billing\"

[[auth.api_keys]]
name = \"alice-agent\"
env = \"ALICE_API_KEY\"
user_id = \"alice\"
"
    );
    let env = |name: &str| match name {
        "BILLING_KEY" => Some(BILLING_KEY.to_owned()),
        "ALICE_API_KEY" => Some(ALICE_KEY.to_owned()),
        _ => None,
    };
    let app = app_with(&config, Path::new("."), &env).await;
    let resolve = |key: &'static str, spiffe: Option<&'static str>| {
        let app = app.clone();
        async move { resolve_claiming(&app, Some(("x-api-key", key.to_owned())), spiffe).await }
    };
    // The billing workload's key: its own ID, or none (filled in), gets the workload's rule.
    for named in [Some("spiffe://prod/billing"), None] {
        let (status, body) = resolve(BILLING_KEY, named).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["credentialId"], "cred-billing");
    }
    // Another workload named by the billing key, or any workload named by a key that proves
    // none (alice's), is refused.
    for (key, named) in [
        (BILLING_KEY, "spiffe://prod/payroll"),
        (ALICE_KEY, "spiffe://prod/billing"),
    ] {
        let (status, body) = resolve(key, Some(named)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "caller_workload_mismatch");
    }
    // Alice's key naming no workload still resolves by user.
    let (status, body) = resolve(ALICE_KEY, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credentialId"], "cred-alice");
}

#[tokio::test]
async fn a_jwt_caller_proves_no_workload_and_may_name_none() {
    let keys = Keys::new(31, "workload-key");
    let dir = temp_dir("workload-jwks");
    std::fs::write(
        dir.join("jwks.json"),
        json!({"keys": [keys.jwk()]}).to_string(),
    )
    .unwrap();
    let app = app_for(&jwt_config("jwks_file = \"jwks.json\""), &dir).await;
    let (status, body) = resolve_claiming(
        &app,
        bearer(keys.token(&claims("alice"))),
        Some("spiffe://prod/billing"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "caller_workload_mismatch");
}

#[test]
fn a_key_must_say_whom_it_acts_for_and_name_a_real_workload() {
    for (key, expected) in [
        ("name = \"k\"\nsha256 = \"{digest}\"\n", "binds no user"),
        (
            "name = \"k\"\nsha256 = \"{digest}\"\nuser_id = \"a\"\nany_user = true\n",
            "both `user_id` and `any_user",
        ),
        (
            "name = \"k\"\nsha256 = \"{digest}\"\nany_user = true\nspiffe_id = \"spiffe://Prod/x\"\n",
            "`spiffe_id` is not a SPIFFE ID",
        ),
    ] {
        let key = key.replace("{digest}", &hex_sha256("k"));
        let err = load_error(&format!(
            "{STORE}\n[auth]\nmode = \"api-key\"\n[[auth.api_keys]]\n{key}"
        ));
        assert!(
            err.errors
                .iter()
                .any(|e| e.field.as_deref() == Some("api_keys[0]")
                    && e.to_string().contains(expected)),
            "{expected}: {err}"
        );
    }
}

#[tokio::test]
async fn a_jwt_svid_proves_the_callers_workload() {
    let keys = Keys::new(41, "svid-key");
    let dir = temp_dir("jwt-svid");
    std::fs::write(
        dir.join("bundle.json"),
        json!({"keys": [keys.jwk()]}).to_string(),
    )
    .unwrap();
    let config = format!(
        "{STORE}
[[stores.default.credentials]]
id = \"cred-billing\"
kind = \"fixed\"
status = \"active\"
ref = \"billing\"

[[rules]]
id = \"billing-workload\"
credentialRef = \"billing\"
priority = 5
matchSpiffeId = \"spiffe://prod.example/billing\"

[auth]
mode = \"jwt-svid\"

[auth.jwt]
trust_domain = \"prod.example\"
audience = [\"{AUDIENCE}\"]
algorithms = [\"EdDSA\"]
jwks_file = \"bundle.json\"
"
    );
    let app = app_for(&config, &dir).await;
    let svid =
        |sub: &str| bearer(keys.token(&json!({"sub": sub, "aud": AUDIENCE, "exp": now() + 300})));
    let resolve = |authorization, spiffe: Option<&'static str>| {
        let app = app.clone();
        async move { resolve_claiming(&app, authorization, spiffe).await }
    };

    // The billing workload's SVID: its rule, whether the body names the workload or not.
    for named in [None, Some("spiffe://prod.example/billing")] {
        let (status, body) = resolve(svid("spiffe://prod.example/billing"), named).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["credentialId"], "cred-billing");
    }
    // Another workload of the domain may not claim billing's rule.
    let (status, body) = resolve(
        svid("spiffe://prod.example/payroll"),
        Some("spiffe://prod.example/billing"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "caller_workload_mismatch");
    // A subject of another trust domain, or not a SPIFFE ID, or a token without audience.
    for authorization in [
        svid("spiffe://other.example/billing"),
        svid("billing"),
        bearer(keys.token(&json!({"sub": "spiffe://prod.example/billing", "exp": now() + 300}))),
    ] {
        let (status, body) = resolve(authorization, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

#[test]
fn jwt_svid_mode_needs_a_trust_domain_and_jwt_mode_refuses_one() {
    for (mode, extra, field) in [
        ("jwt-svid", "", "jwt.trust_domain"),
        ("jwt-svid", "trust_domain = \"Prod\"\n", "jwt.trust_domain"),
        (
            "jwt",
            "issuer = \"i\"\ntrust_domain = \"prod\"\n",
            "jwt.trust_domain",
        ),
    ] {
        let err = load_error(&format!(
            "{STORE}\n[auth]\nmode = \"{mode}\"\n[auth.jwt]\naudience = [\"a\"]\njwks_file = \"x\"\n{extra}"
        ));
        assert!(
            err.errors.iter().any(|e| e.field.as_deref() == Some(field)),
            "{mode} {extra}: {err}"
        );
    }
}
