//! Registered clients kept in a shared state (Vault, Redis), shared by every replica.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::Error;
use identity_seal::Keyring;
use identity_state::SharedState;
use serde_json::Value;

use crate::BACKEND;
use crate::file::{PURPOSE, Record, open_client, seal_client};
use crate::registration::RegisteredClient;
use crate::registry::{ClientKey, ClientPersistence};

/// Registered clients in a [`SharedState`] (Vault or OpenBao KV v2, Redis), shared by every
/// sidecar replica: one document per (issuer, profile) under `clients/`, the client's secrets,
/// their expiry and its management URI sealed with AES-256-GCM under a [`Keyring`] (its
/// `dcr-clients` purpose; the issuer, profile and client id as associated data), as in the
/// sealed file. A registration is made under the state's lease of its (issuer, profile), under
/// `registration-leases/`: replicas starting together register once, not once each.
///
/// ```no_run
/// # fn example(vault: identity_vault::VaultCredentialStore, ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
/// let documents = vault.documents("agent-identity-clients")?;
/// let clients = identity_dcr::SharedClients::new(std::sync::Arc::new(documents), ring);
/// # Ok(()) }
/// ```
pub struct SharedClients {
    documents: Arc<dyn SharedState>,
    keyring: Keyring,
}

impl fmt::Debug for SharedClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedClients")
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
            "the client of profile `{}` at `{}` in the shared state: {problem}",
            key.profile, key.issuer
        )),
    }
}

impl SharedClients {
    /// Clients kept in `documents`, sealed under `keyring`.
    ///
    /// ```
    /// let clients = identity_dcr::SharedClients::new(
    ///     std::sync::Arc::new(identity_state::MemoryState::default()),
    ///     identity_seal::Keyring::new("k1", [7; 32]),
    /// );
    /// ```
    pub fn new(documents: Arc<dyn SharedState>, keyring: Keyring) -> Self {
        Self {
            documents,
            keyring: keyring.for_purpose(PURPOSE),
        }
    }

    fn path(key: &ClientKey) -> String {
        format!("clients/{}/{}", segment(&key.issuer), segment(&key.profile))
    }

    fn lease(key: &ClientKey) -> String {
        format!(
            "registration-leases/{}/{}",
            segment(&key.issuer),
            segment(&key.profile)
        )
    }
}

#[async_trait]
impl ClientPersistence for SharedClients {
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

    async fn try_lease(&self, key: &ClientKey, holder: &str, ttl: Duration) -> Result<bool, Error> {
        self.documents
            .try_lease(&Self::lease(key), holder, ttl)
            .await
    }

    async fn release(&self, key: &ClientKey, holder: &str) -> Result<(), Error> {
        self.documents.release(&Self::lease(key), holder).await
    }
}
