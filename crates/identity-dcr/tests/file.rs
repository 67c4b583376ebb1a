//! Registered clients kept in a file: secrets sealed, keys rotating, tampering and wrong keys
//! refused, writes atomic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::PathBuf;

use identity_core::Error;
use identity_dcr::{ClientKey, ClientPersistence, FilePersistence, RegisteredClient};
use identity_seal::Keyring;

const SECRET: &str = "client-secret-canary-91c2";
const TOKEN: &str = "registration-token-canary-5e7a";

fn directory(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agent-identity-dcr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn key(issuer: &str) -> ClientKey {
    ClientKey {
        issuer: issuer.to_owned(),
        profile: "crm".to_owned(),
    }
}

/// A client as a registration answer gives it (the fields are the crate's to fill).
fn client(issuer: &str, id: &str) -> RegisteredClient {
    let answer = serde_json::json!({
        "client_id": id,
        "client_secret": SECRET,
        "client_secret_expires_at": 0,
        "registration_access_token": TOKEN,
        "client_name": "agent",
        "grant_types": ["client_credentials"],
    });
    RegisteredClient::from_registration_answer(issuer, answer).unwrap()
}

#[tokio::test]
async fn clients_round_trip_with_their_secrets_sealed() {
    let dir = directory("round-trip");
    let path = dir.join("clients.json");
    let ring = Keyring::new("k1", [1u8; 32]);
    let file = FilePersistence::open(&path, ring.clone()).await.unwrap();
    file.save(
        &key("https://as.example.com"),
        &client("https://as.example.com", "c1"),
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("c1") && text.contains("\"key_id\": \"k1\""),
        "{text}"
    );
    assert!(
        !text.contains(SECRET) && !text.contains(TOKEN),
        "a secret is in clear: {text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // No temporary file is left behind; the lock file of the one writer stays.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".clients.json.lock", "clients.json"]);
    // When the secret expires and where the registration is managed are sealed too.
    assert!(
        !text.contains("registration_client_uri") && !text.contains("expires_at"),
        "{text}"
    );

    // A second writer of the file is refused while the first lives, and changes nothing.
    let second = FilePersistence::open(&path, ring.clone()).await.unwrap();
    let err = second
        .save(
            &key("https://b.example.com"),
            &client("https://b.example.com", "c2"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another process"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    drop(second);
    drop(file);

    let reopened = FilePersistence::open(&path, ring).await.unwrap();
    let loaded = reopened
        .load(&key("https://as.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.client_id, "c1");
    assert_eq!(loaded.client_secret.unwrap().expose_secret(), SECRET);
    assert_eq!(
        loaded.registration_access_token.unwrap().expose_secret(),
        TOKEN
    );
    assert_eq!(loaded.metadata.client_name.as_deref(), Some("agent"));
    assert!(
        reopened
            .load(&key("https://other.example.com"))
            .await
            .unwrap()
            .is_none()
    );

    reopened
        .remove(&key("https://as.example.com"))
        .await
        .unwrap();
    assert!(
        reopened
            .load(&key("https://as.example.com"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn keys_rotate_and_old_records_move_to_the_new_key() {
    let dir = directory("rotate");
    let path = dir.join("clients.json");
    let old = FilePersistence::open(&path, Keyring::new("k1", [1u8; 32]))
        .await
        .unwrap();
    old.save(
        &key("https://a.example.com"),
        &client("https://a.example.com", "a"),
    )
    .await
    .unwrap();

    drop(old);
    let both = Keyring::new("k2", [2u8; 32]).with_old_key("k1", [1u8; 32]);
    let rotating = FilePersistence::open(&path, both).await.unwrap();
    assert_eq!(
        rotating
            .load(&key("https://a.example.com"))
            .await
            .unwrap()
            .unwrap()
            .client_id,
        "a"
    );
    rotating
        .save(
            &key("https://b.example.com"),
            &client("https://b.example.com", "b"),
        )
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("\"k1\""),
        "a record is still under the old key: {text}"
    );

    // The old key can now retire.
    let new_only = FilePersistence::open(&path, Keyring::new("k2", [2u8; 32]))
        .await
        .unwrap();
    assert!(
        new_only
            .load(&key("https://a.example.com"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        new_only
            .load(&key("https://b.example.com"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn wrong_keys_tampering_and_bad_files_are_refused_by_name() {
    let dir = directory("refuse");
    let path = dir.join("clients.json");
    let file = FilePersistence::open(&path, Keyring::new("k1", [1u8; 32]))
        .await
        .unwrap();
    file.save(
        &key("https://a.example.com"),
        &client("https://a.example.com", "a"),
    )
    .await
    .unwrap();

    let unknown = FilePersistence::open(&path, Keyring::new("k9", [9u8; 32]))
        .await
        .unwrap();
    let err = unknown
        .load(&key("https://a.example.com"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key `k1`"), "{err}");
    let wrong = FilePersistence::open(&path, Keyring::new("k1", [7u8; 32]))
        .await
        .unwrap();
    let err = wrong.load(&key("https://a.example.com")).await.unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");

    // A sealed blob moved to another record does not open there.
    let mut content: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    content["clients"][0]["client_id"] = "someone-else".into();
    std::fs::write(&path, content.to_string()).unwrap();
    let moved = FilePersistence::open(&path, Keyring::new("k1", [1u8; 32]))
        .await
        .unwrap();
    let err = moved.load(&key("https://a.example.com")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(SECRET));

    std::fs::write(&path, "not json").unwrap();
    let err = FilePersistence::open(&path, Keyring::new("k1", [1u8; 32]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not a client file"), "{err}");
    assert!(Keyring::from_base64("k1", "too-short").is_err());
}
