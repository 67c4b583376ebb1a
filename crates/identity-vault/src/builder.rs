//! `VaultStoreBuilder`: how a `VaultCredentialStore` is made, checked before any request.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use identity_core::{ConfigError, Error};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use crate::auth::{Sessions, VaultAuth};
use crate::path::{Layout, check_path};
use crate::store::{Inner, VaultCredentialStore};

/// Builds a [`VaultCredentialStore`]. Nothing is sent to Vault until the first call: a store
/// built while Vault is down works once Vault is back.
///
/// ```
/// use identity_core::Secret;
/// use identity_vault::{VaultAuth, VaultCredentialStore};
///
/// let err = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")))
///     .prefix("../escape")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("vault prefix"));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct VaultStoreBuilder {
    pub(crate) address: String,
    pub(crate) auth: VaultAuth,
    pub(crate) mount: String,
    pub(crate) prefix: String,
    pub(crate) lease_prefix: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) ca_bundle: Option<PathBuf>,
    pub(crate) client_certificate: Option<(PathBuf, PathBuf)>,
    pub(crate) timeout: Duration,
    pub(crate) list_concurrency: usize,
}

impl fmt::Debug for VaultStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultStoreBuilder")
            .field("address", &self.address)
            .field("auth", &self.auth)
            .field("mount", &self.mount)
            .field("prefix", &self.prefix)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl VaultStoreBuilder {
    /// The KV v2 mount (`secret`).
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let store = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")))
    ///     .mount("kv-agents").build()?;
    /// assert!(format!("{store:?}").contains("kv-agents"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn mount(mut self, mount: impl Into<String>) -> Self {
        self.mount = mount.into();
        self
    }

    /// The prefix under the mount where credentials are kept (`agent-identity`).
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let store = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")))
    ///     .prefix("teams/data/credentials").build()?;
    /// assert!(format!("{store:?}").contains("teams/data/credentials-leases"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The prefix where migration leases are kept (`<prefix>-leases`); it must not overlap the
    /// credentials' prefix.
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let err = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")))
    ///     .prefix("ai").lease_prefix("ai/leases").build().unwrap_err();
    /// assert!(err.to_string().contains("lease prefix"));
    /// ```
    pub fn lease_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.lease_prefix = Some(prefix.into());
        self
    }

    /// The Vault Enterprise namespace, sent as `X-Vault-Namespace`.
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let store = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")))
    ///     .namespace("team-a/agents").build()?;
    /// assert!(format!("{store:?}").contains("team-a/agents"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// A PEM file of CA certificates to trust besides the system's, for an `https` address.
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let err = VaultCredentialStore::builder("https://vault.internal:8200", VaultAuth::token(Secret::new("t")))
    ///     .ca_bundle("/nonexistent/ca.pem").build().unwrap_err();
    /// assert!(err.to_string().contains("ca_bundle"));
    /// ```
    pub fn ca_bundle(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_bundle = Some(path.into());
        self
    }

    /// A client certificate and its private key, both PEM files, for mutual TLS.
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let err = VaultCredentialStore::builder("https://vault.internal:8200", VaultAuth::token(Secret::new("t")))
    ///     .client_certificate("/nonexistent/cert.pem", "/nonexistent/key.pem").build().unwrap_err();
    /// assert!(err.to_string().contains("client_certificate"));
    /// ```
    pub fn client_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate = Some((certificate.into(), key.into()));
        self
    }

    /// The longest one request to Vault may take ([`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let err = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")))
    ///     .timeout(Duration::ZERO).build().unwrap_err();
    /// assert!(err.to_string().contains("timeout"));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many entry reads a listing keeps in flight at most (16).
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let err = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t")))
    ///     .list_concurrency(0).build().unwrap_err();
    /// assert!(err.to_string().contains("list_concurrency"));
    /// ```
    pub fn list_concurrency(mut self, concurrency: usize) -> Self {
        self.list_concurrency = concurrency;
        self
    }

    /// Checks the settings and builds the store, without contacting Vault.
    ///
    /// ```
    /// # use identity_core::Secret;
    /// # use identity_vault::{VaultAuth, VaultCredentialStore};
    /// let err = VaultCredentialStore::builder("ftp://vault", VaultAuth::token(Secret::new("t"))).build().unwrap_err();
    /// assert!(err.to_string().contains("address"));
    /// ```
    pub fn build(self) -> Result<VaultCredentialStore, Error> {
        let located = |field: &str, problem: String| -> Error {
            ConfigError::new("vault store", Some(field), problem).into()
        };
        let address = url::Url::parse(&self.address)
            .map_err(|err| located("address", format!("is not a URL: {err}")))?;
        if !matches!(address.scheme(), "http" | "https") || address.host_str().is_none() {
            return Err(located(
                "address",
                "must be an http or https URL with a host".into(),
            ));
        }
        let lease_prefix = self
            .lease_prefix
            .clone()
            .unwrap_or_else(|| format!("{}-leases", self.prefix));
        let layout = Layout::new(&self.mount, &self.prefix, &lease_prefix).map_err(|err| {
            // A path that cannot be used is a problem of the field that holds it.
            let field = match &err {
                Error::InvalidArgument {
                    argument: "vault mount",
                    ..
                } => "mount",
                Error::InvalidArgument {
                    argument: "vault lease prefix",
                    ..
                } => "lease_prefix",
                _ => "prefix",
            };
            located(field, err.to_string())
        })?;
        if let Some(namespace) = &self.namespace {
            check_path(namespace, "vault namespace")?;
        }
        if let VaultAuth::Token(token) = &self.auth {
            crate::auth::check_token(token.expose_secret()).map_err(|_| {
                located(
                    "token",
                    "is empty or has characters a header cannot carry".into(),
                )
            })?;
        }
        if let VaultAuth::AppRole { mount, .. } | VaultAuth::Kubernetes { mount, .. } = &self.auth {
            check_path(mount, "vault auth mount")?;
        }
        if self.timeout.is_zero() {
            return Err(located("timeout", "must be more than zero".into()));
        }
        if self.list_concurrency == 0 {
            return Err(located("list_concurrency", "must be at least 1".into()));
        }
        let mut ca_certs = Vec::new();
        if let Some(path) = &self.ca_bundle {
            let text = std::fs::read(path).map_err(|err| {
                located(
                    "ca_bundle",
                    format!("{} cannot be read: {}", path.display(), err.kind()),
                )
            })?;
            reqwest::Certificate::from_pem_bundle(&text).map_err(|_| {
                located(
                    "ca_bundle",
                    format!("{} is not a PEM bundle", path.display()),
                )
            })?;
            ca_certs.push(path.display().to_string());
        }
        let identity = match &self.client_certificate {
            None => None,
            Some((cert, key)) => {
                let mut pem = Vec::new();
                for path in [cert, key] {
                    let mut bytes = std::fs::read(path).map_err(|err| {
                        located(
                            "client_certificate",
                            format!("{} cannot be read: {}", path.display(), err.kind()),
                        )
                    })?;
                    pem.append(&mut bytes);
                    pem.push(b'\n');
                }
                Some(reqwest::Identity::from_pem(&pem).map_err(|_| {
                    located(
                        "client_certificate",
                        "is not a PEM certificate with its private key".into(),
                    )
                })?)
            }
        };
        // reqwest (under vaultrs) is built without a bundled TLS provider: the workspace's one.
        identity_http::install_tls_provider();
        // Every field is set, so vaultrs reads nothing from the environment on its own.
        let settings = VaultClientSettingsBuilder::default()
            .address(address.as_str())
            .ca_certs(ca_certs)
            .identity(identity)
            .timeout(Some(self.timeout))
            .token(String::new())
            .verify(true)
            .namespace(self.namespace.clone())
            .build()
            .map_err(|err| located("address", err.to_string()))?;
        let base = VaultClient::new(settings)
            .map_err(|_| located("address", "the HTTP client could not be built".into()))?;
        Ok(VaultCredentialStore {
            inner: Arc::new(Inner {
                sessions: Sessions::new(base, self.auth),
                layout,
                list_concurrency: self.list_concurrency,
                address: self.address,
                namespace: self.namespace,
            }),
        })
    }
}
