//! Client keys for `private_key_jwt` tests.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use serde_json::json;

/// The key id [`ed25519_key_pair`] gives its keys.
pub const CLIENT_KEY_ID: &str = "agent-key-1";

/// The client id oidc-provider knows by the public key given in `FIXTURE_CLIENT_JWK`
/// ([`AuthorizationServer::start_with_client_key`](crate::AuthorizationServer::start_with_client_key)).
pub const JWT_CLIENT_ID: &str = "agent-identity-jwt";

/// An Ed25519 key pair made from `seed`: the private key as PKCS#8 PEM (what a client reads),
/// the public key as a JWK with key id [`CLIENT_KEY_ID`] (what the authorization server knows
/// the client by).
///
/// ```
/// let (pem, jwk) = identity_test_support::ed25519_key_pair(1);
/// assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
/// assert!(jwk.contains("\"crv\":\"Ed25519\""));
/// assert_ne!(identity_test_support::ed25519_key_pair(2).0, pem);
/// ```
pub fn ed25519_key_pair(seed: u8) -> (String, String) {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let der = signing
        .to_pkcs8_der()
        .expect("an Ed25519 key encodes as PKCS#8");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der.as_bytes())
    );
    let jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": CLIENT_KEY_ID, "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes()),
    });
    (pem, jwk.to_string())
}

/// A key pair written by the `openssl` command, as an operator would make one: `kind` is
/// `ed25519`, `p256` (PKCS#8), `p256-sec1` (a SEC1 `EC PRIVATE KEY`) or `p384`. Gives the
/// private key's PEM and the public key's (`openssl pkey -pubout`). Made anew for each call,
/// so that no private key is kept in the repository.
///
/// ```
/// let (private, public) = identity_test_support::openssl_key("ed25519");
/// assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
/// assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
/// ```
pub fn openssl_key(kind: &str) -> (String, String) {
    let args: &[&str] = match kind {
        "ed25519" => &["genpkey", "-algorithm", "ed25519"],
        "p256" => &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        "p256-sec1" => &["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        "p384" => &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
        ],
        other => panic!("no openssl key of kind `{other}`"),
    };
    let openssl = |args: &[&str], input: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the openssl command runs (Debian's openssl package)");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        if let Some(input) = input {
            stdin
                .write_all(input.as_bytes())
                .expect("openssl reads the key");
        }
        drop(stdin);
        let output = child.wait_with_output().expect("openssl finishes");
        assert!(output.status.success(), "openssl {args:?} failed");
        String::from_utf8(output.stdout).expect("openssl writes PEM")
    };
    let private = openssl(args, None);
    let public = openssl(&["pkey", "-pubout"], Some(&private));
    (private, public)
}
