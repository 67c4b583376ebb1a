//! The `[attestation]` section: the keys that sign attestations of resolutions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_identity::ConfigError;
use agent_identity::identity_attest::{Attestor, DEFAULT_ISSUER};
use agent_identity::identity_signing::{PublicKey, Signer, SigningKey};
use serde::Deserialize;

/// `[attestation]`: resolutions asked with `?attest=true` carry a statement signed with the
/// active key; the public keys (the active one and `previous_keys`) are served at
/// `/.well-known/jwks.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttestationSection {
    /// The active key: a PKCS#8 PEM of Ed25519 or P-256 (or a SEC1 P-256 key). Replicas share
    /// it. It is never taken from a caller.
    signing_key_file: PathBuf,
    /// The active key's id, in each attestation's header.
    key_id: String,
    /// Keys the active one replaced, still published so that their attestations verify:
    /// public (or private) PEM files with their ids.
    #[serde(default)]
    previous_keys: Vec<PreviousKey>,
    /// Who attests (`iss`).
    #[serde(default = "default_issuer")]
    issuer: String,
    /// Whom attestations are meant for (`aud`), if anyone in particular.
    audience: Option<String>,
    /// How long an attestation holds, at most (never past the credential's expiry).
    #[serde(default = "default_ttl")]
    ttl_seconds: u64,
}

/// A key an earlier rotation retired.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousKey {
    key_id: String,
    file: PathBuf,
}

fn default_issuer() -> String {
    DEFAULT_ISSUER.into()
}

fn default_ttl() -> u64 {
    300
}

const SECTION: &str = "attestation";

impl AttestationSection {
    /// The attestor of this section, reading key files relative to `base`; every problem is
    /// pushed to `errors`.
    pub(crate) fn attestor(&self, base: &Path, errors: &mut Vec<ConfigError>) -> Option<Attestor> {
        let read = |file: &Path| {
            let path = base.join(file);
            std::fs::read_to_string(&path).map_err(|err| format!("{}: {err}", path.display()))
        };
        let active = read(&self.signing_key_file).and_then(|pem| {
            SigningKey::from_pem(&pem, self.key_id.as_str())
                .map_err(|err| format!("{}: {err}", base.join(&self.signing_key_file).display()))
        });
        let mut signer = match active {
            Ok(key) => Some(Signer::new(key)),
            Err(problem) => {
                errors.push(ConfigError::new(SECTION, Some("signing_key_file"), problem));
                None
            }
        };
        for (index, previous) in self.previous_keys.iter().enumerate() {
            let field = format!("previous_keys[{index}]");
            if previous.key_id == self.key_id {
                errors.push(ConfigError::new(
                    SECTION,
                    Some(&field),
                    format!("uses the active key's id `{}`", self.key_id),
                ));
                continue;
            }
            let key = read(&previous.file).and_then(|pem| {
                PublicKey::from_pem(&pem, previous.key_id.as_str())
                    .map_err(|err| format!("{}: {err}", base.join(&previous.file).display()))
            });
            match key {
                Ok(key) => signer = signer.map(|signer| signer.with_previous(key)),
                Err(problem) => errors.push(ConfigError::new(SECTION, Some(&field), problem)),
            }
        }
        if self.ttl_seconds == 0 {
            errors.push(ConfigError::new(
                SECTION,
                Some("ttl_seconds"),
                "is 0: an attestation would never hold",
            ));
        }
        if self.issuer.trim().is_empty() {
            errors.push(ConfigError::new(SECTION, Some("issuer"), "is empty"));
        }
        let attestor = Attestor::new(signer?)
            .with_issuer(self.issuer.clone())
            .with_ttl(Duration::from_secs(self.ttl_seconds));
        Some(match &self.audience {
            Some(audience) => attestor.with_audience(audience.clone()),
            None => attestor,
        })
    }
}
