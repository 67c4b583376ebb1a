//! Connections kept in a file, their tokens sealed with AES-256-GCM.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use identity_core::{ConfigError, Error, OffsetDateTime, Secret};
use identity_seal::{Keyring, PrivateFile, SealedBox};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::delegated::{Connection, TokenPersistence, Versioned};
use crate::tokens::TokenSet;

/// The version of the file's form this build reads and writes.
const FILE_VERSION: u64 = 2;

/// The purpose the keys sealing connections are derived for.
pub(crate) const PURPOSE: &str = "oauth-connections";

#[derive(Serialize, Deserialize, Default)]
struct Content {
    version: u64,
    connections: Vec<Record>,
}

/// One connection: who, which provider and the record's version in clear (the version bound to
/// the seal as associated data), the tokens and their expiry sealed.
#[derive(Serialize, Deserialize, Clone)]
struct Record {
    user: String,
    provider: String,
    version: u64,
    sealed: SealedBox,
}

/// What is sealed: the tokens and everything that decides their life.
#[derive(Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
    expires_at: Option<i64>,
}

/// What sealed tokens are bound to: tokens moved to another user, provider or version do not
/// open.
fn associated(user: &str, provider: &str, version: Option<u64>) -> Vec<u8> {
    let version = version.map(|v| v.to_string()).unwrap_or_default();
    serde_json::to_vec(&[user, provider, &version]).unwrap_or_default()
}

/// `tokens` sealed for `connection`, with their expiry, bound to `version` when the store keeps
/// a version of its own (the file; Vault's versions are Vault's to keep).
pub(crate) fn seal_tokens(
    keyring: &Keyring,
    connection: &Connection,
    tokens: &TokenSet,
    version: Option<u64>,
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
        expires_at: tokens.expires_at.map(OffsetDateTime::unix_timestamp),
    };
    let plaintext = serde_json::to_vec(&plain).unwrap_or_default();
    keyring.seal(
        &associated(&connection.user, &connection.provider, version),
        &plaintext,
    )
}

/// The tokens sealed for `connection` (and `version`); what is wrong otherwise.
pub(crate) fn open_tokens(
    keyring: &Keyring,
    connection: &Connection,
    sealed: &SealedBox,
    version: Option<u64>,
) -> Result<TokenSet, String> {
    let plaintext = keyring
        .open(
            sealed,
            &associated(&connection.user, &connection.provider, version),
        )
        .map_err(|err| err.to_string())?;
    let tokens: Tokens =
        serde_json::from_slice(&plaintext).map_err(|_| "it holds no tokens".to_owned())?;
    let expires_at = match tokens.expires_at {
        Some(at) => Some(
            OffsetDateTime::from_unix_timestamp(at)
                .map_err(|_| "its expiry is out of range".to_owned())?,
        ),
        None => None,
    };
    let mut set = TokenSet::bearer(Secret::new(tokens.access_token), expires_at);
    set.refresh_token = tokens.refresh_token.map(Secret::new);
    set.id_token = tokens.id_token.map(Secret::new);
    set.scope = tokens.scope;
    Ok(set)
}

/// Users' connections kept in a JSON file owned by one process: who is connected to which
/// provider in clear, the tokens and their expiry sealed with AES-256-GCM under a [`Keyring`]
/// (its `oauth-connections` purpose; the user, the provider and the record's version as
/// associated data, so sealed tokens moved to another user, or a version changed, do not open).
/// The file is a [`PrivateFile`]: written atomically, owner-only, by one process. A tampered
/// record, a wrong key or a corrupt file is an error naming the record, never garbage. Refresh
/// leases are held in the process.
///
/// ```no_run
/// # async fn example(ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
/// let tokens = identity_oauth::FileTokens::open("connections.json", ring).await?;
/// # Ok(()) }
/// ```
pub struct FileTokens {
    file: PrivateFile,
    keyring: Keyring,
    records: Mutex<Vec<Record>>,
    leases: std::sync::Mutex<HashMap<Connection, (String, tokio::time::Instant)>>,
}

impl fmt::Debug for FileTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTokens")
            .field("path", &self.file.path())
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
    /// # async fn example(ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
    /// let tokens = identity_oauth::FileTokens::open("connections.json", ring).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl Into<PathBuf>, keyring: Keyring) -> Result<Self, Error> {
        let file = PrivateFile::new(path);
        let content: Option<Content> = file.read("connections file", FILE_VERSION).await?;
        Ok(Self::with_content(file, content, keyring))
    }

    /// [`FileTokens::open`] for callers without a runtime (a configuration loader).
    ///
    /// ```no_run
    /// # fn example(ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
    /// let tokens = identity_oauth::FileTokens::open_blocking("connections.json", ring)?;
    /// # Ok(()) }
    /// ```
    pub fn open_blocking(path: impl Into<PathBuf>, keyring: Keyring) -> Result<Self, Error> {
        let file = PrivateFile::new(path);
        let content: Option<Content> = file.read_blocking("connections file", FILE_VERSION)?;
        Ok(Self::with_content(file, content, keyring))
    }

    fn with_content(file: PrivateFile, content: Option<Content>, keyring: Keyring) -> Self {
        Self {
            file,
            keyring: keyring.for_purpose(PURPOSE),
            records: Mutex::new(content.map(|c| c.connections).unwrap_or_default()),
            leases: std::sync::Mutex::new(HashMap::new()),
        }
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
            Some(record.version),
        )
        .map_err(|problem| {
            file_error(
                self.file.path(),
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
        let sealed = seal_tokens(&self.keyring, connection, tokens, Some(version))
            .map_err(|err| file_error(self.file.path(), err))?;
        Ok(Record {
            user: connection.user.clone(),
            provider: connection.provider.clone(),
            version,
            sealed,
        })
    }

    async fn write(&self, records: &[Record]) -> Result<(), Error> {
        let content = Content {
            version: FILE_VERSION,
            connections: records.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&content).unwrap_or_default();
        self.file.write(bytes).await
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
