//! Building a store from settings and from the environment: every mistake is refused when the
//! store is built, naming what is wrong; nothing is sent anywhere.
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

use std::collections::BTreeMap;

use identity_core::Secret;
use identity_vault::{VaultAuth, VaultCredentialStore};

fn from(vars: &[(&str, &str)]) -> Result<String, String> {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    VaultCredentialStore::from_env_with(&|name| vars.get(name).cloned())
        .map(|builder| format!("{builder:?}"))
        .map_err(|err| err.to_string())
}

#[test]
fn the_environment_chooses_the_method_in_order_token_approle_kubernetes() {
    let addr = ("VAULT_ADDR", "https://vault.internal:8200");
    let token = from(&[
        addr,
        ("VAULT_TOKEN", "s.canary-token"),
        ("VAULT_ROLE_ID", "r"),
    ])
    .unwrap();
    assert!(
        token.contains("Token") && !token.contains("canary"),
        "{token}"
    );
    let approle = from(&[
        addr,
        ("VAULT_ROLE_ID", "r"),
        ("VAULT_SECRET_ID", "canary-sid"),
        ("VAULT_APPROLE_MOUNT", "approle-agents"),
    ])
    .unwrap();
    assert!(
        approle.contains("approle-agents") && !approle.contains("canary"),
        "{approle}"
    );
    let kubernetes = from(&[
        addr,
        ("VAULT_K8S_ROLE", "agent-identity"),
        ("VAULT_K8S_JWT_PATH", "/var/run/jwt"),
        ("AGENT_IDENTITY_VAULT_MOUNT", "kv-agents"),
        ("AGENT_IDENTITY_VAULT_PREFIX", "team/credentials"),
        ("VAULT_NAMESPACE", "team-a"),
    ])
    .unwrap();
    for part in [
        "Kubernetes",
        "/var/run/jwt",
        "kv-agents",
        "team/credentials",
        "team-a",
    ] {
        assert!(kubernetes.contains(part), "{part}: {kubernetes}");
    }
}

#[test]
fn incomplete_environments_say_what_is_missing() {
    let addr = ("VAULT_ADDR", "https://vault.internal:8200");
    assert!(
        from(&[("VAULT_TOKEN", "t")])
            .unwrap_err()
            .contains("VAULT_ADDR")
    );
    assert!(from(&[addr]).unwrap_err().contains("VAULT_TOKEN"));
    assert!(
        from(&[addr, ("VAULT_ROLE_ID", "r")])
            .unwrap_err()
            .contains("VAULT_SECRET_ID")
    );
    let half = from(&[addr, ("VAULT_TOKEN", "t"), ("VAULT_CLIENT_CERT", "c.pem")]).unwrap_err();
    assert!(half.contains("VAULT_CLIENT_KEY"), "{half}");
    // Blank counts as unset.
    assert!(
        from(&[("VAULT_ADDR", " "), ("VAULT_TOKEN", "t")])
            .unwrap_err()
            .contains("VAULT_ADDR")
    );
}

#[test]
fn bad_settings_are_refused_when_built() {
    let build = |address: &str, token: &str| {
        VaultCredentialStore::builder(address, VaultAuth::token(Secret::new(token)))
            .build()
            .map(drop)
            .map_err(|err| err.to_string())
    };
    assert!(
        build("vault.internal:8200", "t")
            .unwrap_err()
            .contains("address")
    );
    assert!(build("http://", "t").unwrap_err().contains("address"));
    // A token that a header cannot carry would make vaultrs panic; it is refused here instead.
    let err = build("http://127.0.0.1:8200", "s.abc\ndef").unwrap_err();
    assert!(err.contains("token") && !err.contains("abc"), "{err}");
    assert!(
        build("http://127.0.0.1:8200", "")
            .unwrap_err()
            .contains("token")
    );
    let bad_namespace =
        VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")))
            .namespace("team a")
            .build()
            .unwrap_err();
    assert!(
        bad_namespace.to_string().contains("vault namespace"),
        "{bad_namespace}"
    );
    let bad_auth_mount = VaultCredentialStore::builder(
        "http://127.0.0.1:8200",
        VaultAuth::app_role("r", Secret::new("s")).with_mount("../sys"),
    )
    .build()
    .unwrap_err();
    assert!(
        bad_auth_mount.to_string().contains("auth mount"),
        "{bad_auth_mount}"
    );
}
