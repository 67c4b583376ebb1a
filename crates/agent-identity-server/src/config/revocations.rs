//! The `[revocations]` section: where the revocation list is kept, how fresh each replica keeps
//! its copy.

use std::time::Duration;

use agent_identity::ConfigError;
use agent_identity::identity_revocation::{RevocationSettings, Revocations};
use serde::Deserialize;

use crate::stores::shared::{Choice, SharedPlaces};

/// `[revocations]`: `POST /api/revocations` (the `revoke` permission) revokes a credential or a
/// user's connection on every replica; resolutions of what is revoked are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevocationsSection {
    /// The store of `type = "vault"` whose KV mount keeps the list, shared by replicas.
    vault: Option<String>,
    /// Where in that mount.
    #[serde(default = "default_vault_prefix")]
    vault_prefix: String,
    /// Or: the `[redis.<name>]` server that keeps it. This process's memory when neither.
    redis: Option<String>,
    /// How often each replica reads the list (milliseconds).
    #[serde(default = "default_refresh_ms")]
    refresh_ms: u64,
    /// How old a replica's copy may get before it refuses every resolution, and how long a
    /// revocation waits before it answers (milliseconds).
    #[serde(default = "default_max_staleness_ms")]
    max_staleness_ms: u64,
}

fn default_vault_prefix() -> String {
    "agent-identity-revocations".into()
}

fn default_refresh_ms() -> u64 {
    1_000
}

fn default_max_staleness_ms() -> u64 {
    3_000
}

impl RevocationsSection {
    /// The revocations of this section (not read yet: the server reads them before serving).
    pub(crate) fn revocations(
        &self,
        places: &SharedPlaces,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Revocations> {
        if self.refresh_ms == 0 {
            errors.push(ConfigError::new(
                "revocations",
                Some("refresh_ms"),
                "is 0; the list would be read without pause",
            ));
            return None;
        }
        if self.max_staleness_ms < self.refresh_ms {
            errors.push(ConfigError::new(
                "revocations",
                Some("max_staleness_ms"),
                "is less than `refresh_ms`: every replica would refuse between two reads",
            ));
            return None;
        }
        let shared = places.state(
            "revocations",
            &Choice {
                vault: ("vault", self.vault.as_deref()),
                vault_prefix: ("vault_prefix", &self.vault_prefix),
                redis: ("redis", self.redis.as_deref()),
                namespace: "revocations",
            },
        );
        let state = match shared {
            Ok(Some(state)) => state,
            Ok(None) => places.retained.memory("revocations"),
            Err(err) => {
                errors.push(err);
                return None;
            }
        };
        Some(Revocations::new(
            state,
            RevocationSettings::new(
                Duration::from_millis(self.refresh_ms),
                Duration::from_millis(self.max_staleness_ms),
            ),
        ))
    }
}
