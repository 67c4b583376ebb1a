//! Connections kept in a file, their tokens sealed with AES-256-GCM.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use identity_core::{ConfigError, Error, OffsetDateTime, Secret};
use identity_dcr::{Keyring, SealedBox, read_private_file, write_private_file};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::delegated::{Connection, TokenPersistence, Versioned};
use crate::tokens::TokenSet;

#[derive(Serialize, Deserialize, Default)]
struct Content {
    version: u32,
    connections: Vec<Record>,
}

/// One connection: who, which provider, the version and expiry in clear, the tokens sealed.
#[derive(Serialize, Deserialize, Clone)]
struct Record {
    user: String,
    provider: String,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    sealed: SealedBox,
}

#[derive(Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
}

/// What sealed tokens are bound to: tokens moved to another user or provider do not open.
fn associated(user: &str, provider: &str) -> Vec<u8> {
    serde_json::to_vec(&[user, provider]).unwrap_or_default()
}

/// `tokens` sealed for `connection` (the expiry stays outside, in clear).
pub(crate) fn seal_tokens(
    keyring: &Keyring,
    connection: &Connection,
    tokens: &TokenSet,
) -> Result<SealedBox, identity_core::Error> {
    let plain = Tokens {
        access_token: tokens.access_token.expose_secret().to_owned(),
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        id_token: tokens
            .id_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        scope: tokens.scope.clone(),
    };
    let plaintext = serde_json::to_vec(&plain).unwrap_or_default();
    keyring.seal(
        &associated(&connection.user, &connection.provider),
        &plaintext,
    )
}

/// The tokens sealed for `connection`, with their expiry (unix time); what is wrong otherwise.
pub(crate) fn open_tokens(
    keyring: &Keyring,
    connection: &Connection,
    sealed: &SealedBox,
    expires_at: Option<i64>,
) -> Result<TokenSet, String> {
    let plaintext = keyring
        .open(sealed, &associated(&connection.user, &connection.provider))
        .map_err(|err| err.to_string())?;
    let tokens: Tokens =
        serde_json::from_slice(&plaintext).map_err(|_| "it holds no tokens".to_owned())?;
    let mut set = TokenSet::bearer(
        Secret::new(tokens.access_token),
        expires_at.and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok()),
    );
    set.refresh_token = tokens.refresh_token.map(Secret::new);
    set.id_token = tokens.id_token.map(Secret::new);
    set.scope = tokens.scope;
    Ok(set)
}

/// Users' connections kept in a JSON file owned by one process: who is connected to which
/// provider in clear, the tokens sealed with AES-256-GCM under a [`Keyring`] (the user and the
/// provider as associated data, so sealed tokens moved to another user do not open). Writes are
/// atomic and owner-only; a tampered record, a wrong key or a corrupt file is an error naming
/// the record, never garbage. Refresh leases are held in the process.
///
/// ```no_run
/// # async fn example(ring: identity_dcr::Keyring) -> Result<(), identity_core::Error> {
/// let tokens = identity_oauth::FileTokens::open("connections.json", ring).await?;
/// # Ok(()) }
/// ```
pub struct FileTokens {
    path: PathBuf,
    keyring: Keyring,
    records: Mutex<Vec<Record>>,
    leases: std::sync::Mutex<HashMap<Connection, (String, tokio::time::Instant)>>,
}

impl fmt::Debug for FileTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTokens")
            .field("path", &self.path)
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

fn file_error(path: &std::path::Path, problem: impl fmt::Display) -> Error {
    ConfigError::new(path.display().to_string(), None, problem.to_string()).into()
}

impl FileTokens {
    /// Opens (or, when absent, starts) the file at `path`.
    ///
    /// ```no_run
    /// # async fn example(ring: identity_dcr::Keyring) -> Result<(), identity_core::Error> {
    /// let tokens = identity_oauth::FileTokens::open("connections.json", ring).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl Into<PathBuf>, keyring: Keyring) -> Result<Self, Error> {
        let path = path.into();
        let read = tokio::fs::read(&path).await;
        Self::from_read(path, read, keyring)
    }

    /// [`FileTokens::open`] for callers without a runtime (a configuration loader).
    ///
    /// ```no_run
    /// # fn example(ring: identity_dcr::Keyring) -> Result<(), identity_core::Error> {
    /// let tokens = identity_oauth::FileTokens::open_blocking("connections.json", ring)?;
    /// # Ok(()) }
    /// ```
    pub fn open_blocking(path: impl Into<PathBuf>, keyring: Keyring) -> Result<Self, Error> {
        let path = path.into();
        let read = std::fs::read(&path);
        Self::from_read(path, read, keyring)
    }

    fn from_read(
        path: PathBuf,
        read: std::io::Result<Vec<u8>>,
        keyring: Keyring,
    ) -> Result<Self, Error> {
        let records = read_private_file::<Content>(&path, read, "connections file")?
            .map(|content| content.connections)
            .unwrap_or_default();
        Ok(Self {
            path,
            keyring,
            records: Mutex::new(records),
            leases: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn open_record(&self, record: &Record) -> Result<Versioned, Error> {
        let connection = Connection {
            user: record.user.clone(),
            provider: record.provider.clone(),
        };
        let tokens = open_tokens(
            &self.keyring,
            &connection,
            &record.sealed,
            record.expires_at,
        )
        .map_err(|problem| {
            file_error(
                &self.path,
                format!(
                    "the connection of `{}` to `{}`: {problem}",
                    record.user, record.provider
                ),
            )
        })?;
        Ok(Versioned {
            tokens,
            version: record.version,
        })
    }

    fn seal(
        &self,
        connection: &Connection,
        tokens: &TokenSet,
        version: u64,
    ) -> Result<Record, Error> {
        let sealed = seal_tokens(&self.keyring, connection, tokens)
            .map_err(|err| file_error(&self.path, err))?;
        Ok(Record {
            user: connection.user.clone(),
            provider: connection.provider.clone(),
            version,
            expires_at: tokens.expires_at.map(OffsetDateTime::unix_timestamp),
            sealed,
        })
    }

    async fn write(&self, records: &[Record]) -> Result<(), Error> {
        let content = Content {
            version: 1,
            connections: records.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&content).unwrap_or_default();
        write_private_file(&self.path, &bytes).await
    }
}

#[async_trait]
impl TokenPersistence for FileTokens {
    async fn load(&self, connection: &Connection) -> Result<Option<Versioned>, Error> {
        let records = self.records.lock().await;
        records
            .iter()
            .find(|r| r.user == connection.user && r.provider == connection.provider)
            .map(|record| self.open_record(record))
            .transpose()
    }

    async fn save_if(
        &self,
        connection: &Connection,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        let mut records = self.records.lock().await;
        let position = records
            .iter()
            .position(|r| r.user == connection.user && r.provider == connection.provider);
        let current = position.map(|i| records[i].version);
        if current != expected {
            return Ok(None);
        }
        let version = current.map_or(1, |v| v + 1);
        let record = self.seal(connection, tokens, version)?;
        let mut next = records.clone();
        match position {
            Some(i) => next[i] = record,
            None => next.push(record),
        }
        self.write(&next).await?;
        *records = next;
        Ok(Some(version))
    }

    async fn remove(&self, connection: &Connection) -> Result<(), Error> {
        let mut records = self.records.lock().await;
        let next: Vec<Record> = records
            .iter()
            .filter(|r| !(r.user == connection.user && r.provider == connection.provider))
            .cloned()
            .collect();
        self.write(&next).await?;
        *records = next;
        Ok(())
    }

    async fn try_lease(
        &self,
        connection: &Connection,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let mut leases = self
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        match leases.get(connection) {
            Some((other, until)) if other != holder && *until > now => Ok(false),
            _ => {
                leases.insert(connection.clone(), (holder.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn release(&self, connection: &Connection, holder: &str) -> Result<(), Error> {
        let mut leases = self
            .leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if leases.get(connection).is_some_and(|(h, _)| h == holder) {
            leases.remove(connection);
        }
        Ok(())
    }
}
