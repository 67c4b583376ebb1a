//! What a hostile or broken authorization server does, and what the one outbound layer makes of
//! it. A real server will not misbehave on demand (numbers that overflow, a 50 MiB token
//! response, a megabyte of control characters as an error code, metadata that points inside
//! the network), so a few lines of axum stand in for one here; the protocol itself is tested
//! against oidc-provider in the crates above.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use identity_core::{Error, Secret};
use identity_http::{
    ClientCredentials, Form, HttpClient, MAX_LIFETIME, OAuthError, OAuthErrorCode, OutboundPolicy,
    Retry,
};
use url::Url;

/// Serves `app` on `address` (port 0: any), in the background.
async fn serve(address: &str, app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let bound = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    bound
}

/// How a fake endpoint answers.
type Answer = fn() -> Response;

/// A token endpoint answering every POST with `answer`.
async fn token_endpoint(answer: fn() -> Response) -> Url {
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || async move { answer() }),
    );
    let address = serve("127.0.0.1:0", app).await;
    Url::parse(&format!("http://{address}/token")).unwrap()
}

fn http() -> HttpClient {
    HttpClient::new(OutboundPolicy::default().allow_http_loopback(true)).unwrap()
}

async fn token(url: &Url) -> Result<identity_http::TokenResponse, OAuthError> {
    token_with(&http(), url).await
}

async fn token_with(
    http: &HttpClient,
    url: &Url,
) -> Result<identity_http::TokenResponse, OAuthError> {
    http.token(
        url,
        &ClientCredentials::basic("agent", Secret::new("s")),
        &Form::grant("client_credentials"),
        Retry::once(),
        "client_credentials",
    )
    .await
}

#[tokio::test]
async fn hostile_expires_in_values_are_clamped_read_or_absent_never_a_panic() {
    let cases: [(Answer, Option<Duration>); 5] = [
        (
            || {
                r#"{"access_token":"t","token_type":"Bearer","expires_in":9223372036854775807}"#
                    .into_response()
            },
            Some(MAX_LIFETIME),
        ),
        (
            || r#"{"access_token":"t","token_type":"Bearer","expires_in":-1e18}"#.into_response(),
            Some(Duration::ZERO),
        ),
        (
            || r#"{"access_token":"t","token_type":"Bearer","expires_in":"3600"}"#.into_response(),
            Some(Duration::from_secs(3600)),
        ),
        (
            || r#"{"access_token":"t","token_type":"Bearer","expires_in":3600.5}"#.into_response(),
            Some(Duration::from_secs(3600)),
        ),
        (
            || r#"{"access_token":"t","token_type":"Bearer","expires_in":null}"#.into_response(),
            None,
        ),
    ];
    for (answer, expected) in cases {
        let url = token_endpoint(answer).await;
        let token = token(&url).await.unwrap();
        assert_eq!(token.lifetime, expected);
        // An absolute expiry can always be computed from it.
        let now = identity_core::OffsetDateTime::now_utc();
        assert_eq!(token.expires_at(now).is_some(), expected.is_some());
    }
}

#[tokio::test]
async fn a_50_mib_token_response_is_refused_while_it_streams() {
    // Chunked (no Content-Length): the cap holds while reading, not only on the header.
    let url = token_endpoint(|| {
        let chunk = axum::body::Bytes::from(vec![b' '; 1024 * 1024]);
        let stream =
            futures::stream::iter((0..50).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        axum::body::Body::from_stream(stream).into_response()
    })
    .await;
    let err = token(&url).await.unwrap_err();
    let core = err.into_error("test");
    assert!(
        matches!(&core, Error::Protocol { code, .. } if code == "response_too_large"),
        "{core:?}"
    );
    // With a Content-Length, before reading anything.
    let url = token_endpoint(|| vec![b' '; 50 * 1024 * 1024].into_response()).await;
    let err = token(&url).await.unwrap_err().into_error("test");
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "response_too_large"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_403_refusal_is_a_refusal_with_its_code() {
    let url = token_endpoint(|| {
        (
            StatusCode::FORBIDDEN,
            r#"{"error":"insufficient_scope","error_description":"scope crm:admin quoted token abc"}"#,
        )
            .into_response()
    })
    .await;
    let err = token(&url).await.unwrap_err();
    assert_eq!(
        err,
        OAuthError::Refused {
            status: 403,
            code: OAuthErrorCode::InsufficientScope
        }
    );
    assert!(!err.is_retryable());
    let core = err.into_error("token-exchange");
    assert!(!core.is_retryable());
    assert!(!core.to_string().contains("abc"), "{core}");
}

#[tokio::test]
async fn a_megabyte_of_control_characters_as_an_error_code_is_filtered_and_bounded() {
    let url = token_endpoint(|| {
        let code = format!("bad\u{0}\u{1b}[2J\r\n{}", "\u{7}x".repeat(512 * 1024));
        (
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": code }).to_string(),
        )
            .into_response()
    })
    .await;
    // Read whole (the cap raised above the answer's size), then filtered.
    let roomy = HttpClient::new(
        OutboundPolicy::default()
            .allow_http_loopback(true)
            .max_body(16 * 1024 * 1024),
    )
    .unwrap();
    let err = token_with(&roomy, &url).await.unwrap_err();
    let code = err.code().unwrap().as_str().to_owned();
    assert!(code.len() <= 64, "{}", code.len());
    assert!(code.bytes().all(|b| (0x20..0x7f).contains(&b)), "{code:?}");
    let shown = err.into_error("oauth").to_string();
    assert!(shown.len() < 200, "{}", shown.len());
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
}

#[tokio::test]
async fn a_405_is_not_supported() {
    let url = token_endpoint(|| StatusCode::METHOD_NOT_ALLOWED.into_response()).await;
    let err = token(&url).await.unwrap_err();
    assert_eq!(err, OAuthError::NotSupported);
    assert!(matches!(
        err.into_error("dcr"),
        Error::NotSupported { backend: "dcr", .. }
    ));
}

#[tokio::test]
async fn discovery_naming_an_internal_host_reaches_nothing_there() {
    // 127.0.0.2 stands for a host inside the network: a listener there counts connections.
    let (internal, reached) = identity_test_support::silent_listener_on("127.0.0.2").await;
    let internal = internal.trim_start_matches("http://").to_owned();
    // The issuer's metadata (its own address known before it is served) names that host.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let metadata = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("http://{internal}/token"),
    });
    let app = axum::Router::new().route(
        "/.well-known/oauth-authorization-server",
        axum::routing::get(move || {
            let metadata = metadata.clone();
            async move { axum::Json(metadata) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let refused = http().discover(&issuer).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Protocol { code, description: Some(d), .. }
            if code == "unsafe_url" && d.contains("token_endpoint")),
        "{refused:?}"
    );
    // A URL that reached the client some other way is refused at send time too.
    let direct = Url::parse(&format!("http://{internal}/token")).unwrap();
    let err = token(&direct).await.unwrap_err().into_error("test");
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "unsafe_url"),
        "{err:?}"
    );
    assert_eq!(reached.load(Ordering::SeqCst), 0);
    // The listener does count what reaches it (it never answers: a short timeout).
    let _ = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .get(direct)
        .send()
        .await;
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

/// The proxy test runs twice: as the test, which listens as a proxy and starts the second run
/// with `HTTPS_PROXY` and `HTTP_PROXY` pointing at it; and as that second run, which makes the
/// calls. (The environment of a running test cannot be changed without `unsafe`.)
#[tokio::test]
async fn a_proxy_named_in_the_environment_is_ignored() {
    const CHILD: &str = "IDENTITY_HTTP_PROXY_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let url = token_endpoint(|| {
            r#"{"access_token":"t","token_type":"Bearer","expires_in":60}"#.into_response()
        })
        .await;
        // Ours goes straight to the server.
        token(&url).await.unwrap();
        // A client that honours the environment goes to the proxy (which answers nothing
        // useful): the environment is set, and ours ignores it.
        let _ = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
            .post(url)
            .send()
            .await;
        return;
    }
    let proxied = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&proxied);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let exe = std::env::current_exe().unwrap();
    let status = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "a_proxy_named_in_the_environment_is_ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("HTTP_PROXY", format!("http://{proxy}"))
        .env("HTTPS_PROXY", format!("http://{proxy}"))
        .env("ALL_PROXY", format!("http://{proxy}"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .status()
        .await
        .unwrap();
    assert!(status.success());
    // One connection: the control client's. None from ours.
    assert_eq!(proxied.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_resource_is_found_through_its_challenge_else_its_well_known_url() {
    // A resource whose 401 names metadata kept away from the well-known URL (which 404s): a
    // layout the real SDKs do not serve, so a few lines stand in for it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    let (named, metadata) = (format!("{base}/meta/crm"), resource.clone());
    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::get(move || {
                let named = named.clone();
                async move {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(
                            "www-authenticate",
                            format!(
                                "Bearer error=\"invalid_token\", resource_metadata=\"{named}\""
                            ),
                        )],
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/meta/crm",
            axum::routing::get(move || {
                let resource = metadata.clone();
                async move {
                    axum::Json(serde_json::json!({"resource": resource,
                        "authorization_servers": ["https://as.example.com"]}))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let found = http().find_resource(&resource).await.unwrap();
    assert_eq!(found.authorization_servers, vec!["https://as.example.com"]);
    // Without a challenge to follow, the well-known URL is asked, here in vain.
    let err = http()
        .find_resource(&format!("{base}/elsewhere"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/.well-known/oauth-protected-resource/elsewhere"),
        "{err}"
    );
}
