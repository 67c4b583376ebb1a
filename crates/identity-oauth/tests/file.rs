//! Users' connections kept in a file: no token in plain text, a tampered file is an error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::PathBuf;

use identity_core::{OffsetDateTime, Secret};
use identity_oauth::{Connection, FileTokens, TokenPersistence, TokenSet};
use identity_seal::Keyring;

const ACCESS: &str = "access-token-canary-44f1";
const REFRESH: &str = "refresh-token-canary-8d20";

fn path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "agent-identity-oauth-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("connections.json")
}

fn alice() -> Connection {
    Connection {
        user: "alice".into(),
        provider: "github".into(),
    }
}

fn tokens() -> TokenSet {
    let mut tokens = TokenSet::bearer(
        Secret::new(ACCESS),
        Some(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()),
    );
    tokens.refresh_token = Some(Secret::new(REFRESH));
    tokens
}

#[tokio::test]
async fn connections_round_trip_with_no_token_in_plain_text() {
    let path = path("round-trip");
    let ring = Keyring::new("k1", [5u8; 32]);
    let file = FileTokens::open(&path, ring.clone()).await.unwrap();
    assert_eq!(
        file.save_if(&alice(), &tokens(), None).await.unwrap(),
        Some(1)
    );
    // Compare-and-set: a save on a stale version is refused, on the current one accepted.
    assert_eq!(file.save_if(&alice(), &tokens(), None).await.unwrap(), None);
    assert_eq!(
        file.save_if(&alice(), &tokens(), Some(1)).await.unwrap(),
        Some(2)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("alice") && text.contains("github"), "{text}");
    assert!(
        !text.contains(ACCESS) && !text.contains(REFRESH),
        "a token is in clear: {text}"
    );
    // The expiry is sealed with the tokens: nobody who can only write the file can extend it.
    assert!(!text.contains("expires_at"), "{text}");

    drop(file);
    let reopened = FileTokens::open(&path, ring).await.unwrap();
    let loaded = reopened.load(&alice()).await.unwrap().unwrap();
    assert_eq!(loaded.version, 2);
    assert_eq!(loaded.tokens.access_token.expose_secret(), ACCESS);
    assert_eq!(
        loaded.tokens.refresh_token.unwrap().expose_secret(),
        REFRESH
    );
    assert_eq!(loaded.tokens.expires_at, tokens().expires_at);
    reopened.remove(&alice()).await.unwrap();
    assert!(reopened.load(&alice()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_tampered_or_moved_record_is_an_error_not_garbage() {
    let path = path("tamper");
    let ring = Keyring::new("k1", [5u8; 32]);
    let file = FileTokens::open(&path, ring.clone()).await.unwrap();
    file.save_if(&alice(), &tokens(), None).await.unwrap();
    drop(file);

    let mut content: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let original = content.clone();
    // A flipped byte in the ciphertext.
    let ciphertext = content["connections"][0]["sealed"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = format!(
        "{}{}",
        if ciphertext.starts_with('A') {
            "B"
        } else {
            "A"
        },
        &ciphertext[1..]
    );
    content["connections"][0]["sealed"]["ciphertext"] = flipped.into();
    std::fs::write(&path, content.to_string()).unwrap();
    let tampered = FileTokens::open(&path, ring.clone()).await.unwrap();
    let err = tampered.load(&alice()).await.unwrap_err();
    assert!(
        err.to_string().contains("alice") && err.to_string().contains("tampered"),
        "{err}"
    );

    // A record whose version was changed does not open (the version is bound to the seal).
    let mut renumbered = original.clone();
    renumbered["connections"][0]["version"] = 7.into();
    std::fs::write(&path, renumbered.to_string()).unwrap();
    let file = FileTokens::open(&path, ring.clone()).await.unwrap();
    assert!(file.load(&alice()).await.is_err());

    // Alice's sealed tokens put under Bob's name do not open for Bob.
    let mut moved = original;
    moved["connections"][0]["user"] = "bob".into();
    std::fs::write(&path, moved.to_string()).unwrap();
    let bob = Connection {
        user: "bob".into(),
        provider: "github".into(),
    };
    let file = FileTokens::open(&path, ring.clone()).await.unwrap();
    assert!(file.load(&bob).await.is_err());

    std::fs::write(&path, "{ not json").unwrap();
    assert!(FileTokens::open(&path, ring).await.is_err());
}
