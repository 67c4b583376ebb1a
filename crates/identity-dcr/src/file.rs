//! Registered clients kept in a file, their secrets sealed with AES-256-GCM.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Generate, KeyInit, Nonce, Payload};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use identity_core::{ConfigError, Error, OffsetDateTime, Secret};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use crate::registration::{ClientMetadata, RegisteredClient};
use crate::registry::{ClientKey, ClientPersistence};

/// Keys that seal the secrets of a [`FilePersistence`], by key id. New records are sealed with
/// the current key; records sealed with an older key still open while that key is in the ring,
/// and are sealed again with the current key at the next save. So a key rotates by adding a new
/// current key, and retires once every record was saved since.
///
/// ```
/// let ring = identity_dcr::Keyring::new("k2", [2u8; 32]).with_old_key("k1", [1u8; 32]);
/// assert_eq!(ring.current_id(), "k2");
/// assert!(!format!("{ring:?}").contains("[2"));
/// ```
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: BTreeMap<String, [u8; 32]>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A ring whose current key is `key`, named `id`.
    ///
    /// ```
    /// let ring = identity_dcr::Keyring::new("2026-11", [7u8; 32]);
    /// ```
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Self {
        let current = id.into();
        Self {
            keys: BTreeMap::from([(current.clone(), key)]),
            current,
        }
    }

    /// A ring whose current key is the base64 text `key` (32 bytes once decoded), named `id`:
    /// what a configuration gives (from an environment variable).
    ///
    /// ```
    /// let ring = identity_dcr::Keyring::from_base64("k1", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")?;
    /// assert!(identity_dcr::Keyring::from_base64("k1", "short").is_err());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn from_base64(id: impl Into<String>, key: &str) -> Result<Self, Error> {
        Ok(Self::new(id, decode_key(key)?))
    }

    /// The same ring with an older key that still opens records sealed with it.
    ///
    /// ```
    /// let ring = identity_dcr::Keyring::new("k2", [2u8; 32]).with_old_key("k1", [1u8; 32]);
    /// ```
    pub fn with_old_key(mut self, id: impl Into<String>, key: [u8; 32]) -> Self {
        self.keys.entry(id.into()).or_insert(key);
        self
    }

    /// The same ring with every key of `other` added as an older key.
    ///
    /// ```
    /// let ring = identity_dcr::Keyring::new("k2", [2u8; 32]).with_keys_of(&identity_dcr::Keyring::new("k1", [1u8; 32]));
    /// assert_eq!(ring.current_id(), "k2");
    /// ```
    pub fn with_keys_of(mut self, other: &Keyring) -> Self {
        for (id, key) in &other.keys {
            self.keys.entry(id.clone()).or_insert(*key);
        }
        self
    }

    /// The id of the key new records are sealed with.
    ///
    /// ```
    /// assert_eq!(identity_dcr::Keyring::new("k1", [0u8; 32]).current_id(), "k1");
    /// ```
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Seals `plaintext` with the current key, bound to `associated` (data that must be the
    /// same to open it: what the sealed bytes belong to).
    ///
    /// ```
    /// let ring = identity_dcr::Keyring::new("k1", [3u8; 32]);
    /// let sealed = ring.seal(b"alice/github", b"token")?;
    /// assert_eq!(ring.open(&sealed, b"alice/github")?, b"token");
    /// assert!(ring.open(&sealed, b"bob/github").is_err());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn seal(&self, associated: &[u8], plaintext: &[u8]) -> Result<SealedBox, Error> {
        let sealing_failed = || Error::from(ConfigError::new("keyring", None, "sealing failed"));
        let cipher = self.cipher(&self.current).ok_or_else(sealing_failed)?;
        let nonce = Nonce::<Aes256Gcm>::generate();
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .map_err(|_| sealing_failed())?;
        Ok(SealedBox {
            key_id: self.current.clone(),
            nonce: STANDARD.encode(nonce.as_slice()),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    /// Opens `sealed`, which must have been sealed with a key of this ring and the same
    /// `associated` data. The error says which: an unknown key id, or a box that does not open
    /// (a wrong key, or tampered).
    ///
    /// ```
    /// let ring = identity_dcr::Keyring::new("k1", [3u8; 32]);
    /// let sealed = ring.seal(b"a", b"secret")?;
    /// let err = identity_dcr::Keyring::new("k2", [4u8; 32]).open(&sealed, b"a").unwrap_err();
    /// assert!(err.to_string().contains("`k1`"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn open(&self, sealed: &SealedBox, associated: &[u8]) -> Result<Vec<u8>, Error> {
        let refuse = |problem: String| Error::from(ConfigError::new("keyring", None, problem));
        let cipher = self.cipher(&sealed.key_id).ok_or_else(|| {
            refuse(format!(
                "sealed with key `{}`, which the keyring lacks",
                sealed.key_id
            ))
        })?;
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|bytes| Nonce::<Aes256Gcm>::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| refuse("a bad nonce".into()))?;
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| refuse("bad ciphertext".into()))?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &ciphertext,
                    aad: associated,
                },
            )
            .map_err(|_| refuse("does not open: a wrong key, or tampered".into()))
    }

    /// True when `sealed` was sealed with the current key.
    ///
    /// ```
    /// let ring = identity_dcr::Keyring::new("k1", [3u8; 32]);
    /// assert!(ring.is_current(&ring.seal(b"", b"x")?));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn is_current(&self, sealed: &SealedBox) -> bool {
        sealed.key_id == self.current
    }

    fn cipher(&self, id: &str) -> Option<Aes256Gcm> {
        self.keys
            .get(id)
            .and_then(|key| Aes256Gcm::new_from_slice(key).ok())
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], Error> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| {
            ConfigError::new(
                "keyring key",
                None,
                "is not 32 bytes of base64 (generate one with `openssl rand -base64 32`)",
            )
            .into()
        })
}

/// The file's form.
#[derive(Serialize, Deserialize, Default)]
struct FileContent {
    version: u32,
    clients: Vec<Record>,
}

/// One client: what is not secret in clear, the secrets sealed.
#[derive(Serialize, Deserialize, Clone)]
struct Record {
    issuer: String,
    profile: String,
    client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registration_client_uri: Option<String>,
    metadata: ClientMetadata,
    sealed: SealedBox,
}

/// Bytes sealed with AES-256-GCM by a [`Keyring`]: the key id, the nonce and the ciphertext
/// (base64), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBox {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The nonce, base64.
    pub nonce: String,
    /// The ciphertext with its tag, base64.
    pub ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Secrets {
    client_secret: Option<String>,
    registration_access_token: Option<String>,
}

/// What the seal is bound to: a sealed blob moved to another record does not open.
fn associated_data(issuer: &str, profile: &str, client_id: &str) -> Vec<u8> {
    serde_json::to_vec(&[issuer, profile, client_id]).unwrap_or_default()
}

/// Registered clients kept in a JSON file, their client secrets and registration access tokens
/// sealed with AES-256-GCM under a [`Keyring`] (a fresh nonce per record and save, the record's
/// issuer, profile and client id as associated data).
///
/// Writes are atomic (a temporary file in the same directory, flushed, then renamed over the
/// file), and the file is created readable by its owner only. One process owns a file; replicas
/// that must share registrations need a shared store.
///
/// ```no_run
/// # async fn example() -> Result<(), identity_core::Error> {
/// let ring = identity_dcr::Keyring::from_base64("k1", &std::env::var("DCR_KEY").unwrap())?;
/// let file = identity_dcr::FilePersistence::open("/var/lib/agent-identity/clients.json", ring).await?;
/// # Ok(()) }
/// ```
pub struct FilePersistence {
    path: PathBuf,
    keyring: Keyring,
    records: Mutex<Vec<Record>>,
}

impl fmt::Debug for FilePersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilePersistence")
            .field("path", &self.path)
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
    /// # async fn example(ring: identity_dcr::Keyring) -> Result<(), identity_core::Error> {
    /// let file = identity_dcr::FilePersistence::open("clients.json", ring).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl Into<PathBuf>, keyring: Keyring) -> Result<Self, Error> {
        let path = path.into();
        let read = tokio::fs::read(&path).await;
        Self::from_read(path, read, keyring)
    }

    /// [`FilePersistence::open`] for callers without a runtime (a configuration loader).
    ///
    /// ```no_run
    /// # fn example(ring: identity_dcr::Keyring) -> Result<(), identity_core::Error> {
    /// let file = identity_dcr::FilePersistence::open_blocking("clients.json", ring)?;
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
        let records = read_private_file::<FileContent>(&path, read, "client file")?
            .map(|content| content.clients)
            .unwrap_or_default();
        Ok(Self {
            path,
            keyring,
            records: Mutex::new(records),
        })
    }

    fn seal(&self, key: &ClientKey, client: &RegisteredClient) -> Result<Record, Error> {
        let secrets = Secrets {
            client_secret: client
                .client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            registration_access_token: client
                .registration_access_token
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
        };
        let plaintext = serde_json::to_vec(&secrets).unwrap_or_default();
        let aad = associated_data(&key.issuer, &key.profile, &client.client_id);
        let sealed = self
            .keyring
            .seal(&aad, &plaintext)
            .map_err(|err| file_error(&self.path, err))?;
        Ok(Record {
            issuer: key.issuer.clone(),
            profile: key.profile.clone(),
            client_id: client.client_id.clone(),
            client_secret_expires_at: client
                .client_secret_expires_at
                .map(OffsetDateTime::unix_timestamp),
            registration_client_uri: client
                .registration_client_uri
                .as_ref()
                .map(|u| u.to_string()),
            metadata: client.metadata.clone(),
            sealed,
        })
    }

    fn open_record(&self, record: &Record) -> Result<RegisteredClient, Error> {
        let what = format!(
            "the record of `{}` at `{}`",
            record.client_id, record.issuer
        );
        let aad = associated_data(&record.issuer, &record.profile, &record.client_id);
        let plaintext = self
            .keyring
            .open(&record.sealed, &aad)
            .map_err(|err| file_error(&self.path, format!("{what}: {}", problem_of(&err))))?;
        let secrets: Secrets = serde_json::from_slice(&plaintext)
            .map_err(|_| file_error(&self.path, format!("{what} holds no secrets")))?;
        let registration_client_uri = record
            .registration_client_uri
            .as_deref()
            .map(Url::parse)
            .transpose()
            .map_err(|_| {
                file_error(
                    &self.path,
                    format!("{what} has a bad registration_client_uri"),
                )
            })?;
        Ok(RegisteredClient {
            issuer: record.issuer.clone(),
            client_id: record.client_id.clone(),
            client_secret: secrets.client_secret.map(Secret::new),
            client_secret_expires_at: record
                .client_secret_expires_at
                .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok()),
            registration_access_token: secrets.registration_access_token.map(Secret::new),
            registration_client_uri,
            metadata: record.metadata.clone(),
        })
    }

    /// Writes `records` atomically.
    async fn write(&self, records: &[Record]) -> Result<(), Error> {
        let content = FileContent {
            version: 1,
            clients: records.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&content).unwrap_or_default();
        write_private_file(&self.path, &bytes).await
    }
}

/// Writes `bytes` to `path` atomically, readable by its owner only: a temporary file beside it,
/// flushed, then renamed over it, so that a reader sees the old content or the new, never a
/// part.
///
/// ```no_run
/// # async fn example() -> Result<(), identity_core::Error> {
/// identity_dcr::write_private_file("state.json".as_ref(), b"{}").await?;
/// # Ok(()) }
/// ```
pub async fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));
    let io = |err: std::io::Error| file_error(path, format!("cannot be written: {}", err.kind()));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&temporary).await.map_err(io)?;
    tokio::io::AsyncWriteExt::write_all(&mut file, bytes)
        .await
        .map_err(io)?;
    file.sync_all().await.map_err(io)?;
    drop(file);
    tokio::fs::rename(&temporary, path).await.map_err(io)?;
    Ok(())
}

/// The JSON document `read` gave for `path` (a file of kind `kind`, such as "client file"),
/// which must carry `"version": 1`; `None` when the file does not exist yet. A file that cannot
/// be read or is not that document is an error naming the path, never silently replaced.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Content { version: u32 }
/// let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
/// let read = identity_dcr::read_private_file::<Content>("state.json".as_ref(), Err(missing), "state file")?;
/// assert!(read.is_none());
/// let wrong = identity_dcr::read_private_file::<Content>("state.json".as_ref(), Ok(br#"{"version": 2}"#.to_vec()), "state file");
/// assert!(wrong.unwrap_err().to_string().contains("version 2"));
/// # Ok::<(), identity_core::Error>(())
/// ```
pub fn read_private_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    read: std::io::Result<Vec<u8>>,
    kind: &str,
) -> Result<Option<T>, Error> {
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(file_error(path, format!("cannot be read: {}", err.kind()))),
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|err| file_error(path, format!("is not a {kind}: {err}")))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(1) => {}
        Some(other) => {
            return Err(file_error(
                path,
                format!("has version {other}, this build reads 1"),
            ));
        }
        None => return Err(file_error(path, format!("is not a {kind}: no version"))),
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|err| file_error(path, format!("is not a {kind}: {err}")))
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
