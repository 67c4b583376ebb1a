//! Connections kept in Vault's KV v2 engine, shared by every replica.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::{Error, OffsetDateTime};
use identity_seal::{Keyring, SealedBox};
use identity_vault::VaultDocuments;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::BACKEND;
use crate::delegated::{Connection, TokenPersistence, Versioned};
use crate::file::{open_tokens, seal_tokens};
use crate::tokens::TokenSet;

/// One connection's document: who in clear, the tokens and their expiry sealed (Vault keeps the
/// version).
#[derive(Serialize, Deserialize)]
struct Document {
    user: String,
    provider: String,
    sealed: SealedBox,
}

/// A refresh lease's document.
#[derive(Serialize, Deserialize)]
struct LeaseDocument {
    holder: Option<String>,
    until: i64,
}

/// Users' connections in Vault (or OpenBao), shared by every sidecar replica: one KV v2 entry
/// per connection under `connections/`, its tokens and their expiry sealed with AES-256-GCM
/// under a [`Keyring`] (its `oauth-connections` purpose; so that who may read or write the path
/// still reads no token and cannot extend one's life), saved with check-and-set on the KV
/// version. Refresh leases are entries of their own under `refresh-leases/`, taken with
/// check-and-set: of two replicas refreshing one connection, one spends the refresh token and
/// the other reads what it saved.
///
/// ```no_run
/// # fn example(vault: identity_vault::VaultCredentialStore, ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
/// let tokens = identity_oauth::VaultTokens::new(vault.documents("agent-identity-connections")?, ring);
/// # Ok(()) }
/// ```
pub struct VaultTokens {
    documents: VaultDocuments,
    keyring: Keyring,
}

impl fmt::Debug for VaultTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTokens")
            .field("documents", &self.documents)
            .field("keyring", &self.keyring)
            .finish()
    }
}

/// A user id as a path segment: any text, encoded so that it cannot leave its segment.
fn segment(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

impl VaultTokens {
    /// Connections kept in `documents`, sealed under `keyring`.
    ///
    /// ```no_run
    /// # fn example(documents: identity_vault::VaultDocuments) {
    /// let tokens = identity_oauth::VaultTokens::new(documents, identity_seal::Keyring::new("k1", [7; 32]));
    /// # }
    /// ```
    pub fn new(documents: VaultDocuments, keyring: Keyring) -> Self {
        Self {
            documents,
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
                "the connection of `{}` to `{}` in Vault: {problem}",
                connection.user, connection.provider
            )),
        }
    }
}

#[async_trait]
impl TokenPersistence for VaultTokens {
    async fn load(&self, connection: &Connection) -> Result<Option<Versioned>, Error> {
        let Some((value, version)) = self
            .documents
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
        self.documents
            .write_if(&Self::key("connections", connection), &value, expected)
            .await
    }

    async fn remove(&self, connection: &Connection) -> Result<(), Error> {
        self.documents
            .delete(&Self::key("connections", connection))
            .await
    }

    async fn try_lease(
        &self,
        connection: &Connection,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let key = Self::key("refresh-leases", connection);
        let current = self.documents.read(&key).await?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let expected = match &current {
            Some((value, version)) => {
                let lease: Option<LeaseDocument> = serde_json::from_value(value.clone()).ok();
                if let Some(LeaseDocument {
                    holder: Some(other),
                    until,
                }) = lease
                    && other != holder
                    && until > now
                {
                    return Ok(false);
                }
                Some(*version)
            }
            None => None,
        };
        let until = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let lease = LeaseDocument {
            holder: Some(holder.to_owned()),
            until,
        };
        let value = serde_json::to_value(&lease).unwrap_or(Value::Null);
        // Another replica writing first wins; this one then waits for its result.
        Ok(self
            .documents
            .write_if(&key, &value, expected)
            .await?
            .is_some())
    }

    async fn release(&self, connection: &Connection, holder: &str) -> Result<(), Error> {
        let key = Self::key("refresh-leases", connection);
        let Some((value, version)) = self.documents.read(&key).await? else {
            return Ok(());
        };
        let lease: Option<LeaseDocument> = serde_json::from_value(value).ok();
        if lease.is_some_and(|l| l.holder.as_deref() == Some(holder)) {
            let free = serde_json::json!({"holder": null, "until": 0});
            // Lost to a newer holder (the lease had lapsed): nothing of this one's to give back.
            self.documents.write_if(&key, &free, Some(version)).await?;
        }
        Ok(())
    }
}
