//! `type = "memory"`: the reference's credentials JSON, secrets from the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_identity::{ConfigError, Secret};
use serde::Deserialize;

use agent_identity::{Credential, CredentialRef, MemoryCredentialStore, parse_credentials_json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemoryStoreSection {
    /// The reference's credentials JSON.
    pub(crate) credentials_file: Option<PathBuf>,
    /// Credentials inline, in the same camelCase shape.
    #[serde(default)]
    pub(crate) credentials: Vec<Credential>,
    /// Secret material by credential ref.
    #[serde(default)]
    pub(crate) secrets: BTreeMap<String, SecretSource>,
}

/// Where a secret comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretSource {
    /// The environment variable holding it.
    pub(crate) env: String,
}

pub(crate) fn memory_store(
    section: MemoryStoreSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(MemoryCredentialStore, Vec<Credential>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut credentials = section.credentials;
    if let Some(file) = &section.credentials_file {
        let path = base.join(file);
        match std::fs::read_to_string(&path) {
            Ok(json) => match parse_credentials_json(&json) {
                Ok(more) => credentials.extend(more),
                Err(err) => errors.push(ConfigError::new(
                    path.display().to_string(),
                    None,
                    err.to_string(),
                )),
            },
            Err(err) => errors.push(ConfigError::new(
                location,
                Some("credentials_file"),
                format!("{}: {err}", path.display()),
            )),
        }
    }
    let mut secrets: BTreeMap<CredentialRef, Secret> = BTreeMap::new();
    for (reference, source) in section.secrets {
        let field = format!("secrets.{reference}");
        let Ok(reference) = CredentialRef::new(reference) else {
            errors.push(ConfigError::new(
                location,
                Some(&field),
                "is not a valid credential ref",
            ));
            continue;
        };
        if !credentials.iter().any(|c| c.reference == reference) {
            errors.push(ConfigError::new(
                location,
                Some(&field),
                "names a ref no credential of this store has",
            ));
            continue;
        }
        match env(&source.env) {
            Some(value) if !value.is_empty() => {
                secrets.insert(reference, Secret::new(value));
            }
            _ => errors.push(ConfigError::new(
                location,
                Some(&field),
                format!("environment variable `{}` is not set", source.env),
            )),
        }
    }
    for credential in &mut credentials {
        if let Some(secret) = secrets.remove(&credential.reference) {
            credential.secret = Some(secret);
        }
    }
    let listed: Vec<Credential> = credentials
        .iter()
        .map(|c| c.clone().without_secret())
        .collect();
    match MemoryCredentialStore::from_credentials(credentials) {
        Ok(store) if errors.is_empty() => Ok((store, listed)),
        Ok(_) => Err(errors),
        Err(err) => {
            errors.push(ConfigError::new(location, None, err.to_string()));
            Err(errors)
        }
    }
}
