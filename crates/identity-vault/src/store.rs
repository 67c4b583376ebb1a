//! `VaultCredentialStore`: credentials in a KV v2 engine.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use identity_core::{
    Capabilities, ConfigError, Credential, CredentialKind, CredentialRef, CredentialStore,
    CredentialWriter, Error, OffsetDateTime, RequestContext, Secret, async_trait,
    check_lease_arguments, decode_stored, encode_stored,
};
use serde_json::Value;
use tracing::{instrument, warn};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};
use vaultrs::error::ClientError;

use crate::BACKEND;
use crate::auth::{Session, Sessions, VaultAuth};
use crate::builder::VaultStoreBuilder;
use crate::failure::Failure;
use crate::path::{Layout, check_path};
use crate::record::Lease;

/// How many times a lease call re-reads after losing a check-and-set race before it gives up.
const LEASE_ATTEMPTS: usize = 16;

/// Credentials kept in a Vault (or OpenBao) KV v2 engine.
///
/// Each credential is one KV entry at `<mount>/data/<prefix>/<ref>`: the credential's camelCase
/// JSON, and its secret in the field [`SECRET_FIELD`](identity_core::SECRET_FIELD). Refs are checked
/// before any request (see [`ALLOWED_PUNCTUATION`](crate::ALLOWED_PUNCTUATION)): no `..`, no
/// `%`, `?` or `#`, nothing that a URL would read differently.
///
/// - **Reads** reach Vault each time; wrap the store in `identity_cache::CachedStore` for a read
///   cache (single flight, absent refs cached, writes through the wrapper invalidating).
/// - **Listings** LIST the metadata under the prefix (recursively: a ref may contain `/`) and
///   read the entries with at most [`VaultStoreBuilder::list_concurrency`] requests in flight.
/// - **Leases** are KV entries under a separate prefix, taken and released with check-and-set
///   writes, so that of many concurrent reservations exactly one wins, across replicas. Their
///   expiry is read on each replica's wall clock.
/// - **Deletes** are soft (the latest version), so an operator can undelete.
/// - **Errors**: 403 is [`Error::PermissionDenied`] (after checking that the store's token is
///   still valid; if not, the store logs in again and retries once); 404 and soft-deleted
///   entries are "not found"; unreachable, sealed, 429 and 5xx are [`Error::Unavailable`],
///   which is retryable.
///
/// `Debug` shows the address, the layout and the auth method; never a token.
///
/// ```
/// use std::time::Duration;
/// use identity_core::Secret;
/// use identity_vault::{VaultAuth, VaultCredentialStore};
///
/// let store = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("s.canary")))
///     .mount("secret")
///     .prefix("agent-identity")
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// assert!(!format!("{store:?}").contains("canary"));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct VaultCredentialStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) sessions: Sessions,
    pub(crate) layout: Layout,
    pub(crate) list_concurrency: usize,
    pub(crate) address: String,
    pub(crate) namespace: Option<String>,
}

impl fmt::Debug for VaultCredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("VaultCredentialStore")
            .field("address", &inner.address)
            .field("namespace", &inner.namespace)
            .field("mount", &inner.layout.mount)
            .field("prefix", &inner.layout.prefix)
            .field("lease_prefix", &inner.layout.lease_prefix)
            .field("auth", &inner.sessions.method())
            .finish_non_exhaustive()
    }
}

/// The default KV v2 mount.
pub const DEFAULT_MOUNT: &str = "secret";
/// The default prefix of credential entries.
pub const DEFAULT_PREFIX: &str = "agent-identity";
/// The default longest time of one request to Vault.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
impl VaultCredentialStore {
    /// A builder for the Vault at `address` (`https://vault.internal:8200`), authenticating with
    /// `auth`. Defaults: mount [`DEFAULT_MOUNT`], prefix [`DEFAULT_PREFIX`], leases under
    /// `<prefix>-leases`, timeout [`DEFAULT_TIMEOUT`], 16 reads in flight for a listing.
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let builder = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")));
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn builder(address: impl Into<String>, auth: VaultAuth) -> VaultStoreBuilder {
        VaultStoreBuilder {
            address: address.into(),
            auth,
            mount: DEFAULT_MOUNT.into(),
            prefix: DEFAULT_PREFIX.into(),
            lease_prefix: None,
            namespace: None,
            ca_bundle: None,
            client_certificate: None,
            timeout: DEFAULT_TIMEOUT,
            list_concurrency: 16,
        }
    }

    /// A builder from the process environment; see [`VaultCredentialStore::from_env_with`].
    ///
    /// ```no_run
    /// let store = identity_vault::VaultCredentialStore::from_env()?.build()?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn from_env() -> Result<VaultStoreBuilder, Error> {
        Self::from_env_with(&|name| std::env::var(name).ok())
    }

    /// A builder from environment variables looked up with `env`:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `VAULT_ADDR` | the address (required) |
    /// | `VAULT_TOKEN` | token authentication |
    /// | `VAULT_ROLE_ID`, `VAULT_SECRET_ID` | AppRole, when there is no token |
    /// | `VAULT_APPROLE_MOUNT` | its mount (`approle`) |
    /// | `VAULT_K8S_ROLE` | Kubernetes, when there is neither |
    /// | `VAULT_K8S_JWT_PATH`, `VAULT_K8S_MOUNT` | its JWT file and mount |
    /// | `VAULT_NAMESPACE` | the Enterprise namespace |
    /// | `VAULT_CACERT` | a PEM bundle of CAs to trust |
    /// | `VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY` | a client certificate (both or neither) |
    /// | `AGENT_IDENTITY_VAULT_MOUNT`, `AGENT_IDENTITY_VAULT_PREFIX` | the KV layout |
    ///
    /// ```
    /// let env = |name: &str| match name {
    ///     "VAULT_ADDR" => Some("http://127.0.0.1:8200".to_owned()),
    ///     "VAULT_ROLE_ID" => Some("role".to_owned()),
    ///     "VAULT_SECRET_ID" => Some("secret".to_owned()),
    ///     _ => None,
    /// };
    /// let builder = identity_vault::VaultCredentialStore::from_env_with(&env)?;
    /// assert!(format!("{builder:?}").contains("AppRole"));
    /// let none = identity_vault::VaultCredentialStore::from_env_with(&|_| None).unwrap_err();
    /// assert!(none.to_string().contains("VAULT_ADDR"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn from_env_with(env: &dyn Fn(&str) -> Option<String>) -> Result<VaultStoreBuilder, Error> {
        let get = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let missing = |what: &str| ConfigError::new("environment", Some(what), "is not set");
        let address = get("VAULT_ADDR").ok_or_else(|| missing("VAULT_ADDR"))?;
        let auth = if let Some(token) = get("VAULT_TOKEN") {
            VaultAuth::token(Secret::new(token))
        } else if let Some(role_id) = get("VAULT_ROLE_ID") {
            let secret_id = get("VAULT_SECRET_ID").ok_or_else(|| missing("VAULT_SECRET_ID"))?;
            let auth = VaultAuth::app_role(role_id, Secret::new(secret_id));
            match get("VAULT_APPROLE_MOUNT") {
                Some(mount) => auth.with_mount(mount),
                None => auth,
            }
        } else if let Some(role) = get("VAULT_K8S_ROLE") {
            let mut auth = VaultAuth::kubernetes(role);
            if let Some(path) = get("VAULT_K8S_JWT_PATH") {
                auth = auth.with_jwt_path(path);
            }
            match get("VAULT_K8S_MOUNT") {
                Some(mount) => auth.with_mount(mount),
                None => auth,
            }
        } else {
            return Err(ConfigError::new(
                "environment",
                None,
                "no Vault authentication: set VAULT_TOKEN, VAULT_ROLE_ID and VAULT_SECRET_ID, or VAULT_K8S_ROLE",
            )
            .into());
        };
        let mut builder = Self::builder(address, auth);
        if let Some(mount) = get("AGENT_IDENTITY_VAULT_MOUNT") {
            builder = builder.mount(mount);
        }
        if let Some(prefix) = get("AGENT_IDENTITY_VAULT_PREFIX") {
            builder = builder.prefix(prefix);
        }
        if let Some(namespace) = get("VAULT_NAMESPACE") {
            builder = builder.namespace(namespace);
        }
        if let Some(path) = get("VAULT_CACERT") {
            builder = builder.ca_bundle(path);
        }
        match (get("VAULT_CLIENT_CERT"), get("VAULT_CLIENT_KEY")) {
            (Some(cert), Some(key)) => builder = builder.client_certificate(cert, key),
            (None, None) => {}
            _ => {
                return Err(ConfigError::new(
                    "environment",
                    Some("VAULT_CLIENT_CERT"),
                    "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go together",
                )
                .into());
            }
        }
        Ok(builder)
    }
}

impl Inner {
    /// Runs `call` with the current session. On a 403 it asks Vault whether the token itself is
    /// still valid: if it is, the 403 is a policy denial; if not, the store logs in again (when
    /// it can) and runs `call` once more.
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T, Failure>
    where
        F: Fn(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let session = self.sessions.get().await?;
        let denied = match call(session.clone()).await {
            Ok(value) => return Ok(value),
            Err(error) => match Failure::from_client(&error) {
                Failure::Denied => Failure::Denied,
                other => return Err(other),
            },
        };
        match vaultrs::token::lookup_self(&session.client).await {
            Ok(_) => Err(denied),
            Err(error) => match Failure::from_client(&error) {
                Failure::Denied | Failure::Unauthenticated(_) => {
                    self.sessions.invalidate(session.generation()).await;
                    if !self.sessions.can_log_in() {
                        return Err(Failure::Unauthenticated(
                            "the store's Vault token is no longer valid".into(),
                        ));
                    }
                    warn!("the store's Vault token was refused; logging in again");
                    let session = self.sessions.get().await?;
                    call(session).await.map_err(|e| Failure::from_client(&e))
                }
                other => Err(other),
            },
        }
    }

    /// The KV data at `path` and its version; `None` when there is none (or it is soft-deleted).
    pub(crate) async fn read_entry(&self, path: &str) -> Result<Option<(Value, u64)>, Failure> {
        let mount = &self.layout.mount;
        let read = self
            .call(|session| async move {
                let request = ReadSecretRequest::builder()
                    .mount(mount.as_str())
                    .path(path)
                    .build()
                    .map_err(|_| ClientError::InvalidUpdateParameter)?;
                vaultrs::api::exec_with_result(&session.client, request).await
            })
            .await;
        match read {
            Ok(found) => Ok(Some((found.data, found.metadata.version))),
            Err(Failure::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The current version at `path`, 0 when nothing was ever written there.
    async fn latest_version(&self, path: &str) -> Result<u64, Failure> {
        let mount = &self.layout.mount;
        let metadata = self
            .call(|session| async move {
                vaultrs::kv2::read_metadata(&session.client, mount, path).await
            })
            .await;
        match metadata {
            Ok(metadata) => Ok(metadata.current_version),
            Err(Failure::NotFound) => Ok(0),
            Err(other) => Err(other),
        }
    }

    /// The current version at `path` if its latest version is gone (soft-deleted or destroyed)
    /// or it was never written (0); `None` if a live version appeared since the caller's read.
    pub(crate) async fn version_of_absent(&self, path: &str) -> Result<Option<u64>, Failure> {
        let mount = &self.layout.mount;
        let metadata = self
            .call(|session| async move {
                vaultrs::kv2::read_metadata(&session.client, mount, path).await
            })
            .await;
        match metadata {
            Ok(metadata) => {
                let version = metadata.current_version;
                let gone = version == 0
                    || metadata
                        .versions
                        .get(&version.to_string())
                        .is_some_and(|v| v.destroyed || !v.deletion_time.is_empty());
                Ok(gone.then_some(version))
            }
            Err(Failure::NotFound) => Ok(Some(0)),
            Err(other) => Err(other),
        }
    }

    /// Writes `data` at `path` (check-and-set on version `cas` when given); the new version.
    pub(crate) async fn write(
        &self,
        path: &str,
        data: &Value,
        cas: Option<u64>,
    ) -> Result<u64, Failure> {
        let mount = &self.layout.mount;
        let cas = cas
            .map(|version| {
                u32::try_from(version)
                    .map_err(|_| Failure::Malformed(format!("version {version} is out of range")))
            })
            .transpose()?;
        self.call(|session| async move {
            match cas {
                Some(cas) => {
                    vaultrs::kv2::set_with_options(
                        &session.client,
                        mount,
                        path,
                        data,
                        SetSecretRequestOptions { cas },
                    )
                    .await
                }
                None => vaultrs::kv2::set(&session.client, mount, path, data).await,
            }
        })
        .await
        .map(|written| written.version)
    }

    async fn read_credential(
        &self,
        reference: &CredentialRef,
        path: &str,
    ) -> Result<Option<Credential>, Failure> {
        match self.read_entry(path).await? {
            None => Ok(None),
            Some((data, _)) => decode_stored(reference, data)
                .map(Some)
                .map_err(|err| Failure::Malformed(err.to_string())),
        }
    }

    /// Every ref under the prefix, walking folders (a ref may contain `/`).
    async fn refs(&self) -> Result<Vec<CredentialRef>, Failure> {
        let mount = &self.layout.mount;
        let mut folders = vec![String::new()];
        let mut refs = Vec::new();
        while let Some(folder) = folders.pop() {
            let path = format!("{}/{folder}", self.layout.prefix);
            let path = path.trim_end_matches('/');
            let keys = self
                .call(
                    |session| async move { vaultrs::kv2::list(&session.client, mount, path).await },
                )
                .await;
            let keys = match keys {
                Ok(keys) => keys,
                Err(Failure::NotFound) => continue,
                Err(other) => return Err(other),
            };
            for key in keys {
                if key.ends_with('/') {
                    folders.push(format!("{folder}{key}"));
                    continue;
                }
                let name = format!("{folder}{key}");
                match CredentialRef::new(name.as_str()) {
                    Ok(reference) if check_path(&name, "credential ref").is_ok() => {
                        refs.push(reference)
                    }
                    _ => {
                        warn!(key = %name.escape_debug(), "skipping a Vault key that is not a usable credential ref")
                    }
                }
            }
        }
        refs.sort();
        Ok(refs)
    }

    /// Every credential under the prefix that `keep` accepts, without secrets.
    async fn listing(&self, keep: impl Fn(&Credential) -> bool) -> Result<Vec<Credential>, Error> {
        let refs = self
            .refs()
            .await
            .map_err(|f| f.into_error(&format!("listing of `{}`", self.layout.prefix)))?;
        let reads = futures::stream::iter(refs)
            .map(|reference| async move {
                let path = format!("{}/{}", self.layout.prefix, reference.as_str());
                self.read_credential(&reference, &path)
                    .await
                    .map_err(|f| f.into_error(&format!("read of `{path}`")))
            })
            .buffered(self.list_concurrency);
        let mut listed = Vec::new();
        let mut reads = std::pin::pin!(reads);
        while let Some(read) = reads.next().await {
            if let Some(credential) = read?
                && keep(&credential)
            {
                listed.push(credential.without_secret());
            }
        }
        Ok(listed)
    }
}

#[async_trait]
impl CredentialStore for VaultCredentialStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::with_leases()
    }

    /// Looks the store's own token up: it proves Vault is reachable and unsealed and that the
    /// token works, on Vault and OpenBao alike (vaultrs's own health call fails on OpenBao).
    #[instrument(skip_all)]
    async fn health(&self) -> Result<(), Error> {
        self.inner
            .call(|session| async move { vaultrs::token::lookup_self(&session.client).await })
            .await
            .map(drop)
            .map_err(|f| f.into_error("token lookup"))
    }

    #[instrument(skip_all, fields(reference = %reference))]
    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        _context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        let inner = &self.inner;
        let path = inner.layout.credential(reference)?;
        let found = inner.read_credential(reference, &path).await;
        found.map_err(|f| f.into_error(&format!("read of `{path}`")))
    }

    /// The number of keys under the prefix: LIST requests only, no entry read, so that a
    /// health report costs a few requests whatever the number of credentials. A soft-deleted
    /// entry is counted until its metadata is deleted.
    #[instrument(skip_all)]
    async fn count(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        inner
            .refs()
            .await
            .map(|refs| refs.len())
            .map_err(|f| f.into_error(&format!("listing of `{}`", inner.layout.prefix)))
    }

    #[instrument(skip_all)]
    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        self.inner.listing(|c| c.status.is_usable()).await
    }

    #[instrument(skip_all)]
    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        self.inner.listing(|c| c.kind == kind).await
    }

    #[instrument(skip_all, fields(reference = %reference))]
    async fn reserve(
        &self,
        reference: &CredentialRef,
        migration_id: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        check_lease_arguments(migration_id, ttl)?;
        let path = self.inner.layout.lease(reference)?;
        let too_long = || Error::InvalidArgument {
            argument: "lease ttl",
            problem: "is too long".into(),
        };
        let ttl = time::Duration::try_from(ttl).map_err(|_| too_long())?;
        self.inner
            .change_lease(&path, |holder, now| match holder {
                Some(holder) if holder != migration_id => Ok(LeaseStep::Answer(false)),
                // Free, lapsed, or this migration's own: take or renew it.
                _ => {
                    let expires_at = now.checked_add(ttl).ok_or_else(too_long)?;
                    Ok(LeaseStep::Write(
                        Lease::held(migration_id, expires_at),
                        true,
                    ))
                }
            })
            .await
    }

    #[instrument(skip_all, fields(reference = %reference))]
    async fn release(&self, reference: &CredentialRef, migration_id: &str) -> Result<(), Error> {
        let path = self.inner.layout.lease(reference)?;
        self.inner
            .change_lease(&path, |holder, now| match holder {
                None => Ok(LeaseStep::Answer(())),
                Some(holder) if holder != migration_id => Err(Error::LeaseHeld {
                    reference: reference.to_string(),
                }),
                Some(_) => Ok(LeaseStep::Write(Lease::released(now), ())),
            })
            .await
    }
}

/// What a lease change decided, given the current holder.
enum LeaseStep<T> {
    /// Nothing to write: answer this.
    Answer(T),
    /// Write this lease (check-and-set on the version read), then answer.
    Write(Lease, T),
}

impl Inner {
    /// Reads the lease at `path`, lets `decide` choose from its current holder, and writes what
    /// it chose with check-and-set on the version read. A lost race reads again, so of many
    /// concurrent writers exactly one succeeds and the others decide on what it wrote.
    async fn change_lease<T>(
        &self,
        path: &str,
        mut decide: impl FnMut(Option<&str>, OffsetDateTime) -> Result<LeaseStep<T>, Error>,
    ) -> Result<T, Error> {
        let what = || format!("lease at `{path}`");
        for _ in 0..LEASE_ATTEMPTS {
            let Some((current, version)) =
                self.lease(path).await.map_err(|f| f.into_error(&what()))?
            else {
                continue;
            };
            let now = OffsetDateTime::now_utc();
            match decide(current.as_ref().and_then(|l| l.holder_at(now)), now)? {
                LeaseStep::Answer(answer) => return Ok(answer),
                LeaseStep::Write(lease, answer) => {
                    match self.write(path, &lease.encode(), Some(version)).await {
                        Ok(_) => return Ok(answer),
                        Err(Failure::CasMismatch) => continue,
                        Err(other) => return Err(other.into_error(&what())),
                    }
                }
            }
        }
        Err(Failure::CasMismatch.into_error(&what()))
    }

    /// The lease at `path` and the version a check-and-set write must name, both from one
    /// consistent view; `None` when the entry changed between two reads (read again).
    async fn lease(&self, path: &str) -> Result<Option<(Option<Lease>, u64)>, Failure> {
        match self.read_entry(path).await? {
            Some((data, version)) => Ok(Some((Some(Lease::decode(&data)?), version))),
            // Absent, or soft-deleted by an operator: the write must name the version the
            // metadata holds. A version written after the read above is live, not absent, and
            // deciding on the earlier read would let two writers win.
            None => Ok(self
                .version_of_absent(path)
                .await?
                .map(|version| (None, version))),
        }
    }
}

#[async_trait]
impl CredentialWriter for VaultCredentialStore {
    #[instrument(skip_all, fields(reference = %credential.reference))]
    async fn put(&self, credential: Credential) -> Result<(), Error> {
        let inner = &self.inner;
        let path = inner.layout.credential(&credential.reference)?;
        let what = || format!("write of `{path}`");
        let entry = Value::Object(encode_stored(&credential));
        let result = match inner.write(&path, &entry, None).await {
            // A mount configured with `cas_required` takes only check-and-set writes: replace
            // the version there is now.
            Err(Failure::CasRequired) => match inner.latest_version(&path).await {
                Ok(version) => inner.write(&path, &entry, Some(version)).await,
                Err(failure) => Err(failure),
            },
            other => other,
        };
        result.map(drop).map_err(|f| f.into_error(&what()))
    }

    #[instrument(skip_all, fields(reference = %reference))]
    async fn delete(&self, reference: &CredentialRef) -> Result<bool, Error> {
        let inner = &self.inner;
        let path = inner.layout.credential(reference)?;
        let what = || format!("delete of `{path}`");
        let existed = inner
            .read_entry(&path)
            .await
            .map_err(|f| f.into_error(&what()))?
            .is_some();
        if existed {
            let mount = &inner.layout.mount;
            let path = path.as_str();
            inner
                .call(|session| async move {
                    vaultrs::kv2::delete_latest(&session.client, mount, path).await
                })
                .await
                .map_err(|f| f.into_error(&what()))?;
        }
        Ok(existed)
    }
}
