//! Unit tests of the `/oauth/` endpoints' helpers.
use super::*;
use agent_identity::identity_oauth::MemoryTokens;

fn endpoints(key: [u8; 32]) -> OAuthEndpoints {
    let store = Arc::new(DelegatedTokenStore::new(Arc::new(MemoryTokens::default())));
    OAuthEndpoints::new(
        store,
        "https://agents.example.com".parse().unwrap(),
        None,
        Keyring::new("k", key),
    )
}

fn flow(provider: &str) -> Flow {
    Flow {
        user: "alice".into(),
        provider: provider.into(),
        issuer: "https://as.example.com".into(),
        state: "s".into(),
        nonce: "n".into(),
        verifier: "v".repeat(43),
        redirect_uri: "https://agents.example.com/oauth/github/callback".into(),
        resources: Vec::new(),
        openid: true,
        iss_required: true,
        expires: 0,
    }
}

#[test]
fn flow_cookies_open_only_with_the_key_and_for_their_provider() {
    let ours = endpoints([1; 32]);
    let sealed = ours.seal_flow(&flow("github")).unwrap();
    assert!(!sealed.contains(&"v".repeat(43)));
    assert_eq!(ours.open_flow("github", &sealed).unwrap().user, "alice");
    assert!(ours.open_flow("google", &sealed).is_none());
    assert!(endpoints([2; 32]).open_flow("github", &sealed).is_none());
    let mut tampered = sealed.into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert!(
        ours.open_flow("github", &String::from_utf8(tampered).unwrap())
            .is_none()
    );
}

#[test]
fn cookies_are_http_only_lax_scoped_to_the_callback_and_secure_over_https() {
    let text = endpoints([1; 32]).cookie("github", "abc", 600);
    let text = text.to_str().unwrap();
    for part in [
        "agent_identity_flow_github=abc",
        "Path=/oauth/github/callback",
        "Max-Age=600",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
    ] {
        assert!(text.contains(part), "{text}");
    }
}

#[test]
fn behind_a_proxy_path_cookies_follow_the_public_path() {
    let store = Arc::new(DelegatedTokenStore::new(Arc::new(MemoryTokens::default())));
    let endpoints = OAuthEndpoints::new(
        store,
        "https://app.example.com/agent-identity/".parse().unwrap(),
        None,
        Keyring::new("k", [1; 32]),
    );
    assert_eq!(
        endpoints.redirect_uri("github"),
        "https://app.example.com/agent-identity/oauth/github/callback"
    );
    let cookie = endpoints.cookie("github", "v", 600);
    assert!(
        cookie
            .to_str()
            .unwrap()
            .contains("Path=/agent-identity/oauth/github/callback;")
    );
}

#[test]
fn the_user_is_the_callers_or_the_one_named_by_an_unbound_caller() {
    let bound = Caller {
        name: "alice".into(),
        user_id: Some("alice".into()),
        subject_token: None,
        permissions: crate::auth::Permissions::default(),
        workload: None,
        actor_token: None,
    };
    assert_eq!(user_of(Some(&bound), None).unwrap(), "alice");
    assert_eq!(
        user_of(Some(&bound), Some("bob")).unwrap_err().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(user_of(None, Some("bob")).unwrap(), "bob");
    assert_eq!(
        user_of(None, None).unwrap_err().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        user_of(None, Some("a\nb")).unwrap_err().status(),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn cookies_are_found_among_others() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_static("a=1; agent_identity_flow_github=xyz; b=2"),
    );
    assert_eq!(
        cookie_value(&headers, "agent_identity_flow_github"),
        Some("xyz")
    );
    assert_eq!(cookie_value(&headers, "agent_identity_flow_google"), None);
}
