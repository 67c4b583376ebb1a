//! Registered clients kept in Vault's KV v2 engine, shared by every replica.

use std::fmt;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::Error;
use identity_seal::Keyring;
use identity_vault::VaultDocuments;
use serde_json::Value;

use crate::BACKEND;
use crate::file::{PURPOSE, Record, open_client, seal_client};
use crate::registration::RegisteredClient;
use crate::registry::{ClientKey, ClientPersistence};

/// Registered clients in Vault (or OpenBao), shared by every sidecar replica: one KV v2 entry
/// per (issuer, profile) under `clients/`, the client's secrets, their expiry and its
/// management URI sealed with AES-256-GCM under a [`Keyring`] (its `dcr-clients` purpose; the
/// issuer, profile and client id as associated data), as in the sealed file. Replicas then
/// register once per issuer and profile, not once each.
///
/// ```no_run
/// # fn example(vault: identity_vault::VaultCredentialStore, ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
/// let clients = identity_dcr::VaultClients::new(vault.documents("agent-identity-clients")?, ring);
/// # Ok(()) }
/// ```
pub struct VaultClients {
    documents: VaultDocuments,
    keyring: Keyring,
}

impl fmt::Debug for VaultClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultClients")
            .field("documents", &self.documents)
            .field("keyring", &self.keyring)
            .finish()
    }
}

/// An issuer or profile as a path segment: any text, encoded so that it cannot leave its
/// segment.
fn segment(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

fn malformed(key: &ClientKey, problem: &str) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: "malformed_client".into(),
        description: Some(format!(
            "the client of profile `{}` at `{}` in Vault: {problem}",
            key.profile, key.issuer
        )),
    }
}

impl VaultClients {
    /// Clients kept in `documents`, sealed under `keyring`.
    ///
    /// ```no_run
    /// # fn example(documents: identity_vault::VaultDocuments) {
    /// let clients = identity_dcr::VaultClients::new(documents, identity_seal::Keyring::new("k1", [7; 32]));
    /// # }
    /// ```
    pub fn new(documents: VaultDocuments, keyring: Keyring) -> Self {
        Self {
            documents,
            keyring: keyring.for_purpose(PURPOSE),
        }
    }

    fn path(key: &ClientKey) -> String {
        format!("clients/{}/{}", segment(&key.issuer), segment(&key.profile))
    }
}

#[async_trait]
impl ClientPersistence for VaultClients {
    async fn load(&self, key: &ClientKey) -> Result<Option<RegisteredClient>, Error> {
        let Some((value, _)) = self.documents.read(&Self::path(key)).await? else {
            return Ok(None);
        };
        let record: Record =
            serde_json::from_value(value).map_err(|_| malformed(key, "not a client document"))?;
        if record.issuer != key.issuer || record.profile != key.profile {
            return Err(malformed(key, "it names another client"));
        }
        open_client(&self.keyring, &record)
            .map(Some)
            .map_err(|problem| malformed(key, &problem))
    }

    async fn save(&self, key: &ClientKey, client: &RegisteredClient) -> Result<(), Error> {
        let record = seal_client(&self.keyring, key, client)?;
        let value = serde_json::to_value(&record).unwrap_or(Value::Null);
        let path = Self::path(key);
        // Replace whatever there is: the registry's lock already serialises writers of one key
        // in this process; a replica writing meanwhile makes this one read and write again.
        for _ in 0..5 {
            let expected = self
                .documents
                .read(&path)
                .await?
                .map(|(_, version)| version);
            if self
                .documents
                .write_if(&path, &value, expected)
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        Err(Error::unavailable(
            BACKEND,
            "the client was written by another replica five times in a row; try again",
        ))
    }

    async fn remove(&self, key: &ClientKey) -> Result<(), Error> {
        self.documents.delete(&Self::path(key)).await
    }

    async fn clear(&self) -> Result<(), Error> {
        for key in self.documents.list("clients").await? {
            self.documents.delete(&key).await?;
        }
        Ok(())
    }
}
