//! `VaultDocuments`: JSON documents other than credentials (users' connections, registered
//! clients) that replicas share, with the store's session and check-and-set.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use identity_core::{Error, OffsetDateTime};
use identity_state::{SharedState, check_document, check_key};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::failure::Failure;
use crate::path::check_path;
use crate::store::{Inner, VaultCredentialStore};

impl VaultCredentialStore {
    /// JSON documents under `prefix` in the store's mount, read and written with the store's
    /// session (its authentication, renewal and retry on a revoked token) and check-and-set:
    /// state that replicas share, such as users' connections. `prefix` must lie apart from the
    /// credentials and the leases.
    ///
    /// ```
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let store = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(identity_core::Secret::new("t"))).build()?;
    /// let connections = store.documents("agent-identity-connections")?;
    /// assert!(store.documents("agent-identity/inside").is_err());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn documents(&self, prefix: &str) -> Result<VaultDocuments, Error> {
        let layout = &self.inner.layout;
        check_path(prefix, "vault documents prefix")?;
        let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        for taken in [&layout.prefix, &layout.lease_prefix] {
            if nested(prefix, taken) || nested(taken, prefix) {
                return Err(Error::InvalidArgument {
                    argument: "vault documents prefix",
                    problem: format!("must lie apart from `{taken}`"),
                });
            }
        }
        Ok(VaultDocuments {
            inner: self.inner.clone(),
            prefix: prefix.to_owned(),
        })
    }
}

/// JSON documents kept in Vault's KV v2 engine, with versions for check-and-set; made by
/// [`VaultCredentialStore::documents`]. Keys are checked as refs are: a closed character set,
/// no empty, `.` or `..` segment.
#[derive(Clone)]
pub struct VaultDocuments {
    inner: Arc<Inner>,
    prefix: String,
}

impl fmt::Debug for VaultDocuments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultDocuments")
            .field("mount", &self.inner.layout.mount)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl VaultDocuments {
    fn path(&self, key: &str) -> Result<String, Error> {
        check_path(key, "vault document key")?;
        Ok(format!("{}/{key}", self.prefix))
    }

    /// Where the lease named `key` is kept: beside the documents, under `<prefix>.leases`, so
    /// that a lease is never listed or read as a document.
    fn lease_path(&self, key: &str) -> Result<String, Error> {
        check_key(key)?;
        Ok(format!("{}.leases/{key}", self.prefix))
    }

    async fn read_at(&self, path: &str) -> Result<Option<(Value, u64)>, Error> {
        self.inner
            .read_entry(path)
            .await
            .map_err(|f| f.into_error(&format!("read of `{path}`")))
    }

    async fn write_at(
        &self,
        path: &str,
        document: &Value,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        let what = || format!("write of `{path}`");
        let cas = match expected {
            Some(version) => version,
            // Absent: never written, or deleted (its metadata keeps the version to name).
            None => match self
                .inner
                .version_of_absent(path)
                .await
                .map_err(|f| f.into_error(&what()))?
            {
                Some(version) => version,
                None => return Ok(None),
            },
        };
        match self.inner.write(path, document, Some(cas)).await {
            Ok(version) => Ok(Some(version)),
            Err(Failure::CasMismatch) => Ok(None),
            Err(other) => Err(other.into_error(&what())),
        }
    }

    /// Every key under `folder` (`""` for all), recursively, sorted: what a shared store lists
    /// to forget everything it keeps. Soft-deleted entries are listed until their metadata is
    /// deleted; reading one gives `None`.
    ///
    /// ```no_run
    /// # async fn example(documents: identity_vault::VaultDocuments) -> Result<(), identity_core::Error> {
    /// for key in documents.list("clients").await? {
    ///     documents.delete(&key).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, folder: &str) -> Result<Vec<String>, Error> {
        let folder = folder.trim_matches('/');
        if !folder.is_empty() {
            check_path(folder, "vault document folder")?;
        }
        let mount = &self.inner.layout.mount;
        let mut folders = vec![if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        }];
        let mut found = Vec::new();
        while let Some(current) = folders.pop() {
            let path = format!("{}/{current}", self.prefix);
            let path = path.trim_end_matches('/');
            let keys = self
                .inner
                .call(
                    |session| async move { vaultrs::kv2::list(&session.client, mount, path).await },
                )
                .await;
            let keys = match keys {
                Ok(keys) => keys,
                Err(Failure::NotFound) => continue,
                Err(other) => return Err(other.into_error(&format!("listing of `{path}`"))),
            };
            for key in keys {
                if key.ends_with('/') {
                    folders.push(format!("{current}{key}"));
                } else {
                    found.push(format!("{current}{key}"));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The document at `key` and its version; `None` when there is none.
    ///
    /// ```no_run
    /// # async fn example(documents: identity_vault::VaultDocuments) -> Result<(), identity_core::Error> {
    /// if let Some((document, version)) = documents.read("alice/github").await? {
    ///     println!("version {version}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn read(&self, key: &str) -> Result<Option<(Value, u64)>, Error> {
        self.read_at(&self.path(key)?).await
    }

    /// Writes `document` at `key` if its version is still `expected` (`None`: there is no
    /// document); the new version, or `None` when another writer came first.
    ///
    /// ```no_run
    /// # async fn example(documents: identity_vault::VaultDocuments) -> Result<(), identity_core::Error> {
    /// let written = documents.write_if("alice/github", &serde_json::json!({"a": 1}), None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_if(
        &self,
        key: &str,
        document: &Value,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        self.write_at(&self.path(key)?, document, expected).await
    }

    /// Deletes the document at `key` (its latest version; Vault keeps the history).
    ///
    /// ```no_run
    /// # async fn example(documents: identity_vault::VaultDocuments) -> Result<(), identity_core::Error> {
    /// documents.delete("alice/github").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        let mount = &self.inner.layout.mount;
        let target = path.as_str();
        match self
            .inner
            .call(|session| async move {
                vaultrs::kv2::delete_latest(&session.client, mount, target).await
            })
            .await
        {
            Ok(()) | Err(Failure::NotFound) => Ok(()),
            Err(other) => Err(other.into_error(&format!("delete of `{path}`"))),
        }
    }
}

/// A lease as Vault keeps it: who holds it (none once given back) and until when, in
/// milliseconds since 1970.
#[derive(Serialize, Deserialize)]
struct Lease {
    holder: Option<String>,
    until_ms: i64,
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Vault has no atomic "set if absent with a time to live": leases are documents of their own
/// taken by check-and-set on their version, with the holder's deadline inside. Replicas' clocks
/// must agree to well within a lease's time to live.
#[async_trait]
impl SharedState for VaultDocuments {
    async fn read(&self, key: &str) -> Result<Option<(Value, u64)>, Error> {
        check_key(key)?;
        VaultDocuments::read(self, key).await
    }

    async fn write_if(
        &self,
        key: &str,
        document: &Value,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        check_key(key)?;
        check_document(document)?;
        VaultDocuments::write_if(self, key, document, expected).await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        VaultDocuments::delete(self, key).await
    }

    /// Vault lists a deleted document until its metadata goes (which would let its version be
    /// used again): each listed key is read, and the deleted are left out.
    async fn list(&self, folder: &str) -> Result<Vec<String>, Error> {
        let trimmed = folder.trim_matches('/');
        if !trimmed.is_empty() {
            check_key(trimmed)?;
        }
        let mut present = Vec::new();
        for key in VaultDocuments::list(self, trimmed).await? {
            if VaultDocuments::read(self, &key).await?.is_some() {
                present.push(key);
            }
        }
        Ok(present)
    }

    async fn try_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, Error> {
        let path = self.lease_path(key)?;
        let now = now_ms();
        let expected = match self.read_at(&path).await? {
            Some((value, version)) => {
                if let Ok(Lease {
                    holder: Some(other),
                    until_ms,
                }) = serde_json::from_value(value)
                    && other != holder
                    && until_ms > now
                {
                    return Ok(false);
                }
                Some(version)
            }
            None => None,
        };
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let lease = Lease {
            holder: Some(holder.to_owned()),
            until_ms: now.saturating_add(ttl_ms),
        };
        let value = serde_json::to_value(&lease).unwrap_or(Value::Null);
        // Another replica writing first wins.
        Ok(self.write_at(&path, &value, expected).await?.is_some())
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), Error> {
        let path = self.lease_path(key)?;
        let Some((value, version)) = self.read_at(&path).await? else {
            return Ok(());
        };
        if serde_json::from_value::<Lease>(value).is_ok_and(|l| l.holder.as_deref() == Some(holder))
        {
            let free = Lease {
                holder: None,
                until_ms: 0,
            };
            let free = serde_json::to_value(&free).unwrap_or(Value::Null);
            // Lost to a newer holder (the lease had lapsed): nothing of this one's to give back.
            self.write_at(&path, &free, Some(version)).await?;
        }
        Ok(())
    }
}
