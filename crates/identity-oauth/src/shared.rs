//! Connections kept in a shared state (Vault, Redis), shared by every replica.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::Error;
use identity_seal::{Keyring, SealedBox};
use identity_state::SharedState;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::BACKEND;
use crate::delegated::{Connection, TokenPersistence, Versioned};
use crate::file::{open_tokens, seal_tokens};
use crate::tokens::TokenSet;

/// One connection's document: who in clear, the tokens and their expiry sealed (the shared
/// state keeps the version).
#[derive(Serialize, Deserialize)]
struct Document {
    user: String,
    provider: String,
    sealed: SealedBox,
}

/// Users' connections in a [`SharedState`] (Vault or OpenBao KV v2, Redis), shared by every
/// sidecar replica: one document per connection under `connections/`, its tokens and their
/// expiry sealed with AES-256-GCM under a [`Keyring`] (its `oauth-connections` purpose; so that
/// who may read or write the backend still reads no token and cannot extend one's life), saved
/// with check-and-set on the document's version. Refresh leases are the state's leases, under
/// `refresh-leases/`: of two replicas refreshing one connection, one spends the refresh token
/// and the other reads what it saved.
///
/// ```no_run
/// # fn example(vault: identity_vault::VaultCredentialStore, ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
/// let documents = vault.documents("agent-identity-connections")?;
/// let tokens = identity_oauth::SharedTokens::new(std::sync::Arc::new(documents), ring);
/// # Ok(()) }
/// ```
pub struct SharedTokens {
    state: Arc<dyn SharedState>,
    keyring: Keyring,
}

impl fmt::Debug for SharedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTokens")
            .field("state", &self.state)
            .field("keyring", &self.keyring)
            .finish()
    }
}

/// A user id as a key segment: any text, encoded so that it cannot leave its segment.
fn segment(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

impl SharedTokens {
    /// Connections kept in `state`, sealed under `keyring`.
    ///
    /// ```
    /// let tokens = identity_oauth::SharedTokens::new(
    ///     std::sync::Arc::new(identity_state::MemoryState::default()),
    ///     identity_seal::Keyring::new("k1", [7; 32]),
    /// );
    /// ```
    pub fn new(state: Arc<dyn SharedState>, keyring: Keyring) -> Self {
        Self {
            state,
            keyring: keyring.for_purpose(crate::file::PURPOSE),
        }
    }

    fn key(kind: &str, connection: &Connection) -> String {
        format!(
            "{kind}/{}/{}",
            segment(&connection.user),
            segment(&connection.provider)
        )
    }

    fn malformed(connection: &Connection, problem: &str) -> Error {
        Error::Protocol {
            backend: BACKEND,
            code: "malformed_connection".into(),
            description: Some(format!(
                "the connection of `{}` to `{}` in the shared state: {problem}",
                connection.user, connection.provider
            )),
        }
    }
}

#[async_trait]
impl TokenPersistence for SharedTokens {
    async fn load(&self, connection: &Connection) -> Result<Option<Versioned>, Error> {
        let Some((value, version)) = self
            .state
            .read(&Self::key("connections", connection))
            .await?
        else {
            return Ok(None);
        };
        let document: Document = serde_json::from_value(value)
            .map_err(|_| Self::malformed(connection, "not a connection document"))?;
        if document.user != connection.user || document.provider != connection.provider {
            return Err(Self::malformed(connection, "it names another connection"));
        }
        let tokens = open_tokens(&self.keyring, connection, &document.sealed, None)
            .map_err(|problem| Self::malformed(connection, &problem))?;
        Ok(Some(Versioned { tokens, version }))
    }

    async fn save_if(
        &self,
        connection: &Connection,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        let document = Document {
            user: connection.user.clone(),
            provider: connection.provider.clone(),
            sealed: seal_tokens(&self.keyring, connection, tokens, None)?,
        };
        let value = serde_json::to_value(&document).unwrap_or(Value::Null);
        self.state
            .write_if(&Self::key("connections", connection), &value, expected)
            .await
    }

    async fn remove(&self, connection: &Connection) -> Result<(), Error> {
        self.state
            .delete(&Self::key("connections", connection))
            .await
    }

    async fn try_lease(
        &self,
        connection: &Connection,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.state
            .try_lease(&Self::key("refresh-leases", connection), holder, ttl)
            .await
    }

    async fn release(&self, connection: &Connection, holder: &str) -> Result<(), Error> {
        self.state
            .release(&Self::key("refresh-leases", connection), holder)
            .await
    }
}
