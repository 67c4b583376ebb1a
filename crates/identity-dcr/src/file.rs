//! Registered clients kept in a file, their secrets sealed with AES-256-GCM.

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use identity_core::{ConfigError, Error, OffsetDateTime, Secret};
use identity_seal::{Keyring, PrivateFile, SealedBox};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use crate::registration::{ClientMetadata, RegisteredClient};
use crate::registry::{ClientKey, ClientPersistence};

/// The file's form.
#[derive(Serialize, Deserialize, Default)]
struct FileContent {
    version: u64,
    clients: Vec<Record>,
}

/// The version of the file's form this build reads and writes.
const FILE_VERSION: u64 = 2;

/// The purpose the file's keys are derived for.
pub(crate) const PURPOSE: &str = "dcr-clients";

/// One client: who it is in clear; its secrets, the secret's expiry and where its registration
/// is managed sealed (changing any of them would let a writer of the file keep a dead client or
/// send the registration access token elsewhere).
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Record {
    pub(crate) issuer: String,
    pub(crate) profile: String,
    pub(crate) client_id: String,
    pub(crate) metadata: ClientMetadata,
    pub(crate) sealed: SealedBox,
}

#[derive(Serialize, Deserialize)]
struct Secrets {
    client_secret: Option<String>,
    registration_access_token: Option<String>,
    client_secret_expires_at: Option<i64>,
    registration_client_uri: Option<String>,
}

/// What the seal is bound to: a sealed blob moved to another record does not open.
fn associated_data(issuer: &str, profile: &str, client_id: &str) -> Vec<u8> {
    serde_json::to_vec(&[issuer, profile, client_id]).unwrap_or_default()
}

/// Registered clients kept in a JSON file, their client secrets, registration access tokens,
/// secret expiries and management URIs sealed with AES-256-GCM under a [`Keyring`] (the ring's
/// `dcr-clients` purpose, a fresh nonce per record and save, the record's issuer, profile and
/// client id as associated data).
///
/// The file is a [`PrivateFile`]: written atomically, owner-only, and by one process (the first
/// save takes its lock). Replicas that must share registrations need a shared store.
///
/// ```no_run
/// # async fn example() -> Result<(), identity_core::Error> {
/// let ring = identity_seal::Keyring::from_base64("k1", &std::env::var("DCR_KEY").unwrap())?;
/// let file = identity_dcr::FilePersistence::open("/var/lib/agent-identity/clients.json", ring).await?;
/// # Ok(()) }
/// ```
pub struct FilePersistence {
    file: PrivateFile,
    keyring: Keyring,
    records: Mutex<Vec<Record>>,
}

impl fmt::Debug for FilePersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilePersistence")
            .field("path", &self.file.path())
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

fn file_error(path: &Path, problem: impl fmt::Display) -> Error {
    ConfigError::new(path.display().to_string(), None, problem.to_string()).into()
}

impl FilePersistence {
    /// Opens (or, when absent, starts) the file at `path`. A file that cannot be read or is not
    /// this format is an error, never silently replaced.
    ///
    /// ```no_run
    /// # async fn example(ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
    /// let file = identity_dcr::FilePersistence::open("clients.json", ring).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl Into<PathBuf>, keyring: Keyring) -> Result<Self, Error> {
        let file = PrivateFile::new(path);
        let content: Option<FileContent> = file.read("client file", FILE_VERSION).await?;
        Ok(Self::with_content(file, content, keyring))
    }

    /// [`FilePersistence::open`] for callers without a runtime (a configuration loader).
    ///
    /// ```no_run
    /// # fn example(ring: identity_seal::Keyring) -> Result<(), identity_core::Error> {
    /// let file = identity_dcr::FilePersistence::open_blocking("clients.json", ring)?;
    /// # Ok(()) }
    /// ```
    pub fn open_blocking(path: impl Into<PathBuf>, keyring: Keyring) -> Result<Self, Error> {
        let file = PrivateFile::new(path);
        let content: Option<FileContent> = file.read_blocking("client file", FILE_VERSION)?;
        Ok(Self::with_content(file, content, keyring))
    }

    fn with_content(file: PrivateFile, content: Option<FileContent>, keyring: Keyring) -> Self {
        Self {
            file,
            keyring: keyring.for_purpose(PURPOSE),
            records: Mutex::new(content.map(|c| c.clients).unwrap_or_default()),
        }
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    fn seal(&self, key: &ClientKey, client: &RegisteredClient) -> Result<Record, Error> {
        seal_client(&self.keyring, key, client).map_err(|err| file_error(self.path(), err))
    }

    fn open_record(&self, record: &Record) -> Result<RegisteredClient, Error> {
        open_client(&self.keyring, record).map_err(|problem| file_error(self.path(), problem))
    }
}

/// `client` as kept for `key`: who it is in clear, its secrets, their expiry and its management
/// URI sealed under `keyring`, bound to the issuer, profile and client id.
pub(crate) fn seal_client(
    keyring: &Keyring,
    key: &ClientKey,
    client: &RegisteredClient,
) -> Result<Record, Error> {
    let secrets = Secrets {
        client_secret: client
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        registration_access_token: client
            .registration_access_token
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        client_secret_expires_at: client
            .client_secret_expires_at
            .map(OffsetDateTime::unix_timestamp),
        registration_client_uri: client
            .registration_client_uri
            .as_ref()
            .map(|u| u.to_string()),
    };
    let plaintext = serde_json::to_vec(&secrets).unwrap_or_default();
    let aad = associated_data(&key.issuer, &key.profile, &client.client_id);
    let sealed = keyring.seal(&aad, &plaintext)?;
    Ok(Record {
        issuer: key.issuer.clone(),
        profile: key.profile.clone(),
        client_id: client.client_id.clone(),
        metadata: client.metadata.clone(),
        sealed,
    })
}

/// The client a record keeps, opened with `keyring`; what is wrong otherwise (naming the record).
pub(crate) fn open_client(keyring: &Keyring, record: &Record) -> Result<RegisteredClient, String> {
    let what = format!(
        "the record of `{}` at `{}`",
        record.client_id, record.issuer
    );
    let aad = associated_data(&record.issuer, &record.profile, &record.client_id);
    let plaintext = keyring
        .open(&record.sealed, &aad)
        .map_err(|err| format!("{what}: {}", problem_of(&err)))?;
    let secrets: Secrets =
        serde_json::from_slice(&plaintext).map_err(|_| format!("{what} holds no secrets"))?;
    let registration_client_uri = secrets
        .registration_client_uri
        .as_deref()
        .map(Url::parse)
        .transpose()
        .map_err(|_| format!("{what} has a bad registration_client_uri"))?;
    Ok(RegisteredClient {
        issuer: record.issuer.clone(),
        client_id: record.client_id.clone(),
        client_secret: secrets.client_secret.map(Secret::new),
        client_secret_expires_at: secrets
            .client_secret_expires_at
            .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok()),
        registration_access_token: secrets.registration_access_token.map(Secret::new),
        registration_client_uri,
        metadata: record.metadata.clone(),
    })
}

impl FilePersistence {
    /// Writes `records` atomically.
    async fn write(&self, records: &[Record]) -> Result<(), Error> {
        let content = FileContent {
            version: FILE_VERSION,
            clients: records.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&content).unwrap_or_default();
        self.file.write(bytes).await
    }
}

/// The problem an error states, without its location (the caller adds its own).
fn problem_of(err: &Error) -> String {
    match err {
        Error::InvalidConfig(config) => config.problem.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl ClientPersistence for FilePersistence {
    async fn load(&self, key: &ClientKey) -> Result<Option<RegisteredClient>, Error> {
        let records = self.records.lock().await;
        records
            .iter()
            .find(|r| r.issuer == key.issuer && r.profile == key.profile)
            .map(|record| self.open_record(record))
            .transpose()
    }

    async fn save(&self, key: &ClientKey, client: &RegisteredClient) -> Result<(), Error> {
        let sealed = self.seal(key, client)?;
        let mut records = self.records.lock().await;
        let mut next: Vec<Record> = Vec::with_capacity(records.len() + 1);
        for record in records.iter() {
            if record.issuer == key.issuer && record.profile == key.profile {
                continue;
            }
            // Records sealed with an older key move to the current one.
            if self.keyring.is_current(&record.sealed) {
                next.push(record.clone());
            } else {
                let opened = self.open_record(record)?;
                let record_key = ClientKey {
                    issuer: record.issuer.clone(),
                    profile: record.profile.clone(),
                };
                next.push(self.seal(&record_key, &opened)?);
            }
        }
        next.push(sealed);
        self.write(&next).await?;
        *records = next;
        Ok(())
    }

    async fn remove(&self, key: &ClientKey) -> Result<(), Error> {
        let mut records = self.records.lock().await;
        let next: Vec<Record> = records
            .iter()
            .filter(|r| !(r.issuer == key.issuer && r.profile == key.profile))
            .cloned()
            .collect();
        self.write(&next).await?;
        *records = next;
        Ok(())
    }

    async fn clear(&self) -> Result<(), Error> {
        let mut records = self.records.lock().await;
        self.write(&[]).await?;
        records.clear();
        Ok(())
    }
}
