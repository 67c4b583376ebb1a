//! Keys read from what openssl writes, statements signed and refused for each reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_signing::{
    Algorithm, Expectations, KeyError, KeySet, PublicKey, Signer, SigningKey, VerifyError,
};
use identity_test_support::openssl_key;
use proptest::prelude::*;
use serde_json::{Value, json};

const TYP: &str = "example+jwt";

fn claims(exp: i64) -> Value {
    json!({"iss": "agent-identity", "sub": "alice", "exp": exp, "aud": "payments"})
}

const FAR: i64 = 4_102_444_800;

fn expect() -> Expectations {
    Expectations::new("agent-identity", TYP)
}

#[test]
fn keys_written_by_openssl_sign_and_their_public_halves_verify() {
    for (kind, algorithm) in [
        ("ed25519", Algorithm::EdDsa),
        ("p256", Algorithm::Es256),
        ("p256-sec1", Algorithm::Es256),
    ] {
        let (private, public) = openssl_key(kind);
        let key = SigningKey::from_pem(&private, "k1").unwrap();
        assert_eq!(key.algorithm(), algorithm, "{kind}");
        let published = PublicKey::from_pem(&public, "k1").unwrap();
        assert_eq!(&published, key.public_key(), "{kind}");
        // A private key's PEM stands for its public half too.
        assert_eq!(
            &PublicKey::from_pem(&private, "k1").unwrap(),
            key.public_key()
        );
        let jws = Signer::new(key).sign(TYP, &claims(FAR)).unwrap();
        let seen: Value = KeySet::from_keys([published])
            .verify(&jws, &expect())
            .unwrap();
        assert_eq!(seen["sub"], "alice");
    }
}

#[test]
fn unsupported_keys_are_refused_with_what_they_are() {
    let (p384, _) = openssl_key("p384");
    let err = SigningKey::from_pem(&p384, "k").unwrap_err();
    assert!(matches!(err, KeyError::Unsupported(_)), "{err}");
    let (ed, ed_public) = openssl_key("ed25519");
    let err = SigningKey::from_pem(&ed_public, "k").unwrap_err();
    assert!(err.to_string().contains("PUBLIC KEY"), "{err}");
    assert_eq!(
        SigningKey::from_pem("garbage", "k").unwrap_err(),
        KeyError::NotPem
    );
    assert_eq!(
        SigningKey::from_pem(&ed, "").unwrap_err(),
        KeyError::BadKeyId
    );
    let err = KeySet::from_jwks(&json!({"keys": [
        SigningKey::generate(Algorithm::EdDsa, "same").unwrap().public_key().jwk(),
        SigningKey::generate(Algorithm::Es256, "same").unwrap().public_key().jwk(),
    ]}))
    .unwrap_err();
    assert!(err.to_string().contains("`same` is given twice"), "{err}");
}

fn parts(jws: &str) -> Vec<String> {
    jws.split('.').map(str::to_owned).collect()
}

fn reencode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn decoded(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn each_kind_of_bad_statement_is_refused_for_its_reason() {
    for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
        let signer = Signer::new(SigningKey::generate(algorithm, "k1").unwrap());
        let keys = signer.key_set();
        let good = signer.sign(TYP, &claims(FAR)).unwrap();
        assert!(keys.verify::<Value>(&good, &expect()).is_ok());

        // A changed payload (another user), signature kept.
        let mut p = parts(&good);
        let mut payload = decoded(&p[1]);
        payload["sub"] = json!("mallory");
        p[1] = reencode(&payload);
        assert_eq!(
            keys.verify::<Value>(&p.join("."), &expect()),
            Err(VerifyError::BadSignature)
        );

        // A key id nobody published.
        let other = Signer::new(SigningKey::generate(algorithm, "k9").unwrap());
        let foreign = other.sign(TYP, &claims(FAR)).unwrap();
        assert_eq!(
            keys.verify::<Value>(&foreign, &expect()),
            Err(VerifyError::UnknownKey { kid: "k9".into() })
        );
        // Another key under the published id.
        let impostor = Signer::new(SigningKey::generate(algorithm, "k1").unwrap());
        let forged = impostor.sign(TYP, &claims(FAR)).unwrap();
        assert_eq!(
            keys.verify::<Value>(&forged, &expect()),
            Err(VerifyError::BadSignature)
        );

        // A header that names another algorithm, or none of the key's.
        let mut p = parts(&good);
        let mut header = decoded(&p[0]);
        header["alg"] = json!(match algorithm {
            Algorithm::EdDsa => "ES256",
            _ => "EdDSA",
        });
        p[0] = reencode(&header);
        assert_eq!(
            keys.verify::<Value>(&p.join("."), &expect()),
            Err(VerifyError::AlgorithmMismatch)
        );
        header["alg"] = json!("none");
        p[0] = reencode(&header);
        p[2] = String::new();
        assert!(keys.verify::<Value>(&p.join("."), &expect()).is_err());

        // Expired, another type, another issuer, another audience, no expiry.
        let expired = signer.sign(TYP, &claims(1_000_000)).unwrap();
        assert_eq!(
            keys.verify::<Value>(&expired, &expect()),
            Err(VerifyError::Expired)
        );
        let other_type = signer.sign("other+jwt", &claims(FAR)).unwrap();
        assert_eq!(
            keys.verify::<Value>(&other_type, &expect()),
            Err(VerifyError::WrongType)
        );
        assert_eq!(
            keys.verify::<Value>(&good, &Expectations::new("someone-else", TYP)),
            Err(VerifyError::WrongIssuer)
        );
        assert_eq!(
            keys.verify::<Value>(&good, &expect().with_audience("billing")),
            Err(VerifyError::WrongAudience)
        );
        assert!(
            keys.verify::<Value>(&good, &expect().with_audience("payments"))
                .is_ok()
        );
        let endless = signer
            .sign(TYP, &json!({"iss": "agent-identity", "sub": "a"}))
            .unwrap();
        assert_eq!(
            keys.verify::<Value>(&endless, &expect()),
            Err(VerifyError::MissingClaim)
        );
        assert_eq!(
            keys.verify::<Value>("a.b", &expect()),
            Err(VerifyError::Malformed)
        );
    }
}

#[test]
fn a_rotated_signer_keeps_old_statements_verifiable_until_the_old_key_is_dropped() {
    let first = SigningKey::generate(Algorithm::EdDsa, "2026-10").unwrap();
    let first_public = first.public_key().clone();
    let old = Signer::new(first).sign(TYP, &claims(FAR)).unwrap();
    let rotated = Signer::new(SigningKey::generate(Algorithm::Es256, "2026-11").unwrap())
        .with_previous(first_public);
    let new = rotated.sign(TYP, &claims(FAR)).unwrap();
    // Through the JWKS document, as an auditor would take it.
    let published = KeySet::from_jwks(&rotated.jwks()).unwrap();
    assert_eq!(
        published.key_ids().collect::<Vec<_>>(),
        ["2026-11", "2026-10"]
    );
    assert!(published.verify::<Value>(&old, &expect()).is_ok());
    assert!(published.verify::<Value>(&new, &expect()).is_ok());
    let dropped = Signer::new(SigningKey::generate(Algorithm::Es256, "2026-12").unwrap());
    assert!(matches!(
        dropped.key_set().verify::<Value>(&old, &expect()),
        Err(VerifyError::UnknownKey { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_claims_round_trip_and_any_changed_byte_is_refused(
        sub in ".{0,40}", extra in proptest::collection::vec(any::<u8>(), 0..16),
        flip in any::<prop::sample::Index>(), es256 in any::<bool>(),
    ) {
        let algorithm = if es256 { Algorithm::Es256 } else { Algorithm::EdDsa };
        let signer = Signer::new(SigningKey::generate(algorithm, "k").unwrap());
        let body = json!({"iss": "agent-identity", "sub": sub, "exp": FAR, "extra": extra});
        let jws = signer.sign(TYP, &body).unwrap();
        let seen: Value = signer.key_set().verify(&jws, &expect()).unwrap();
        prop_assert_eq!(&seen, &body);
        // Change one character of the payload: never accepted.
        let mut bytes = jws.into_bytes();
        let start = bytes.iter().position(|&b| b == b'.').unwrap() + 1;
        let end = bytes.iter().rposition(|&b| b == b'.').unwrap();
        let at = start + flip.index(end - start);
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(signer.key_set().verify::<Value>(&changed, &expect()).is_err());
    }
}
