//! `[policies]` and `[approvals]`: the gates that govern each call (Cedar permission policies,
//! approvals bound to the exact call), and the policy files' reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity::identity_approval::{
    ApprovalSigner, ApprovalStore, Approvals, SharedApprovals,
};
use agent_identity::identity_policy::{Policies, PolicyGate, PolicySource};
use agent_identity::{ConfigError, RoutingRule};
use serde::Deserialize;

use crate::stores::shared::{Choice, SharedPlaces};

/// The `[policies]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoliciesSection {
    /// Cedar policy files, relative to the configuration.
    files: Vec<PathBuf>,
    /// A Cedar schema to check them against; the built-in one when absent.
    schema_file: Option<PathBuf>,
    /// How often the files are read again, in seconds; 0: never.
    #[serde(default = "default_reload_interval")]
    reload_interval_secs: u64,
}

fn default_reload_interval() -> u64 {
    10
}

/// The `[approvals]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalsSection {
    /// The store of `type = "vault"` whose KV mount keeps approvals, shared by replicas; this
    /// process's memory when absent.
    vault: Option<String>,
    /// Where in that mount.
    #[serde(default = "default_vault_prefix")]
    vault_prefix: String,
    /// Or: the `[redis.<name>]` server that keeps them, shared by replicas.
    redis: Option<String>,
    /// The Ed25519 key (PKCS#8 PEM) that signs granted approvals; replicas must share one. A
    /// key made at start when absent (one replica only).
    signing_key_file: Option<PathBuf>,
    /// The key's id, in each statement's header.
    #[serde(default = "default_key_id")]
    key_id: String,
}

fn default_vault_prefix() -> String {
    "agent-identity-approvals".into()
}

fn default_key_id() -> String {
    "approvals".into()
}

/// The policy files in force, read again as they change.
#[derive(Debug, Clone)]
pub struct PolicyFiles {
    files: Vec<PathBuf>,
    schema: Option<PathBuf>,
    interval: Option<Duration>,
    /// The gate the policies are in force in.
    pub gate: Arc<PolicyGate>,
}

impl PolicyFiles {
    /// Reads the files: the policies, or every problem with their places.
    fn read(files: &[PathBuf], schema: Option<&Path>) -> Result<Policies, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut sources = Vec::new();
        for file in files {
            match std::fs::read_to_string(file) {
                Ok(text) => sources.push(PolicySource::new(file.display().to_string(), text)),
                Err(err) => errors.push(ConfigError::new(
                    "policies",
                    Some("files"),
                    format!("{}: {err}", file.display()),
                )),
            }
        }
        let schema = match schema.map(std::fs::read_to_string).transpose() {
            Ok(text) => text,
            Err(err) => {
                errors.push(ConfigError::new(
                    "policies",
                    Some("schema_file"),
                    err.to_string(),
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Policies::new(&sources, schema.as_deref()).map_err(|err| {
            err.problems
                .into_iter()
                .map(|problem| ConfigError::new("policies", None, problem.to_string()))
                .collect()
        })
    }

    /// Reads the files again every interval, forever; policies that cannot be used leave the
    /// ones in force, and say why.
    pub async fn watch(self) {
        let Some(interval) = self.interval else {
            return;
        };
        let mut last = self.fingerprint();
        loop {
            tokio::time::sleep(interval).await;
            let now = self.fingerprint();
            if now == last {
                continue;
            }
            last = now;
            match Self::read(&self.files, self.schema.as_deref()) {
                Ok(policies) => {
                    let count = policies.len();
                    self.gate.replace(policies);
                    tracing::info!(policies = count, "permission policies reloaded");
                }
                Err(errors) => {
                    for error in errors {
                        tracing::error!(%error, "permission policies not reloaded; the ones in force stay");
                    }
                }
            }
        }
    }

    /// What the files hold now, to notice a change.
    fn fingerprint(&self) -> Vec<Option<Vec<u8>>> {
        self.files
            .iter()
            .chain(&self.schema)
            .map(|file| std::fs::read(file).ok())
            .collect()
    }
}

/// The governing gates of a configuration.
#[derive(Debug, Default)]
pub(crate) struct Governance {
    pub(crate) policies: Option<PolicyFiles>,
    pub(crate) approvals: Option<Approvals>,
}

/// Builds `[policies]` and `[approvals]`; an approval demanded by a rule or a policy needs
/// `[approvals]`.
pub(crate) fn governance(
    policies: Option<PoliciesSection>,
    approvals: Option<ApprovalsSection>,
    rules: &[RoutingRule],
    base: &Path,
    places: &SharedPlaces,
    errors: &mut Vec<ConfigError>,
) -> Governance {
    let mut governance = Governance::default();
    let mut demanding = rules
        .iter()
        .filter(|rule| rule.require_approval.is_some())
        .map(|rule| format!("rule `{}`", rule.id))
        .collect::<Vec<_>>();
    if let Some(section) = policies {
        if section.files.is_empty() {
            errors.push(ConfigError::new(
                "policies",
                Some("files"),
                "is empty; name the Cedar policy files",
            ));
        }
        let files: Vec<PathBuf> = section.files.iter().map(|file| base.join(file)).collect();
        let schema = section.schema_file.as_ref().map(|file| base.join(file));
        match PolicyFiles::read(&files, schema.as_deref()) {
            Ok(read) => {
                if read.demands_approval() {
                    demanding.push("a policy annotated `@approval`".into());
                }
                governance.policies = Some(PolicyFiles {
                    files,
                    schema,
                    interval: (section.reload_interval_secs > 0)
                        .then(|| Duration::from_secs(section.reload_interval_secs)),
                    gate: Arc::new(PolicyGate::new(read)),
                });
            }
            Err(mut more) => errors.append(&mut more),
        }
    } else if let Some(rule) = rules.iter().find(|rule| rule.require_authorization) {
        errors.push(ConfigError::new(
            format!("rule `{}`", rule.id),
            Some("requireAuthorization"),
            "needs a policy that permits it, and no [policies] are configured",
        ));
    }
    match approvals {
        Some(section) => governance.approvals = approvals_of(section, base, places, errors),
        None => {
            if let Some(first) = demanding.first() {
                errors.push(ConfigError::new(
                    first.clone(),
                    None,
                    "demands approval, and no [approvals] are configured to hold calls for it",
                ));
            }
        }
    }
    governance
}

fn approvals_of(
    section: ApprovalsSection,
    base: &Path,
    places: &SharedPlaces,
    errors: &mut Vec<ConfigError>,
) -> Option<Approvals> {
    let signer = match &section.signing_key_file {
        Some(file) => {
            let path = base.join(file);
            std::fs::read_to_string(&path)
                .map_err(|err| format!("{}: {err}", path.display()))
                .and_then(|pem| {
                    ApprovalSigner::from_pem(&pem, section.key_id.as_str())
                        .map_err(|err| format!("{}: {err}", path.display()))
                })
        }
        // Made when the process started, and kept across reloads: a statement it signed
        // still verifies.
        None => places.retained.signer(&section.key_id),
    };
    let signer = match signer {
        Ok(signer) => signer,
        Err(problem) => {
            errors.push(ConfigError::new(
                "approvals",
                Some("signing_key_file"),
                problem,
            ));
            return None;
        }
    };
    let shared = places.state(
        "approvals",
        &Choice {
            vault: ("vault", section.vault.as_deref()),
            vault_prefix: ("vault_prefix", &section.vault_prefix),
            redis: ("redis", section.redis.as_deref()),
            namespace: "approvals",
        },
    );
    let store: Arc<dyn ApprovalStore> = match shared {
        Err(err) => {
            errors.push(err);
            return None;
        }
        // In this process's memory, kept across reloads.
        Ok(None) => Arc::new(SharedApprovals::new(places.retained.memory("approvals"))),
        Ok(Some(_)) if section.signing_key_file.is_none() => {
            errors.push(ConfigError::new(
                "approvals",
                Some("signing_key_file"),
                format!(
                    "is needed with `{}`: replicas that share approvals must share the key that signs them",
                    if section.redis.is_some() { "redis" } else { "vault" }
                ),
            ));
            return None;
        }
        Ok(Some(state)) => Arc::new(SharedApprovals::new(state)),
    };
    Some(Approvals::new(store, signer))
}
