//! TLS on the sidecar's listener: a certificate chain and key from PEM files, taken up again
//! when the files change, without a restart and without touching open connections.
//!
//! The files are polled (every `reload_interval_secs`) rather than watched with inotify: a
//! mounted secret (Kubernetes, Vault Agent) is replaced by a symlink swap that file watchers
//! report unreliably, and a poll of two small files costs nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

mod workloads;

pub use workloads::{ClientAuthSettings, PeerWorkload, SvidProblem, SvidVerifier, spiffe_id_of};

/// The `[server.tls]` section.
///
/// ```
/// let tls: agent_identity_server::tls::TlsSettings = toml::from_str(
///     "cert_file = \"tls/server.pem\"\nkey_file = \"tls/server-key.pem\"\n",
/// ).unwrap();
/// assert_eq!(tls.reload_interval_secs, 10);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, PEM, leaf first (relative to the configuration's directory).
    pub cert_file: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the files are checked for a new certificate, in seconds.
    #[serde(default = "default_reload_interval")]
    pub reload_interval_secs: u64,
    /// Client certificates as X.509-SVIDs (`[server.tls.client_auth]`); none asked for when
    /// absent.
    pub client_auth: Option<ClientAuthSettings>,
}

fn default_reload_interval() -> u64 {
    10
}

/// The certificate the listener presents, swapped when its files change.
#[derive(Debug)]
pub struct ReloadingCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Arc<CertifiedKey>, [u8; 32])>,
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .0
                .clone(),
        )
    }
}

impl ReloadingCertificate {
    /// Reads the files now; an error names the file and what is wrong with it.
    fn open(cert_file: PathBuf, key_file: PathBuf) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem, digest) = read(&cert_file, &key_file)?;
        let loaded = (
            certified(&cert_file, &key_file, &cert_pem, &key_pem, &provider)?,
            digest,
        );
        Ok(Self {
            cert_file,
            key_file,
            provider,
            current: RwLock::new(loaded),
        })
    }

    /// Takes the files up again if they changed: `Ok(true)` when a new certificate is in use,
    /// `Ok(false)` when nothing changed, an error (and the old certificate kept) when the new
    /// files are not usable, for instance caught between the writes of the two.
    pub fn reload(&self) -> Result<bool, String> {
        let (cert_pem, key_pem, digest) = read(&self.cert_file, &self.key_file)?;
        // Unchanged files are not parsed again.
        if self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            == digest
        {
            return Ok(false);
        }
        let key = certified(
            &self.cert_file,
            &self.key_file,
            &cert_pem,
            &key_pem,
            &self.provider,
        )?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (key, digest);
        Ok(true)
    }
}

/// The certificate file's contents, the key file's, and a digest of both.
type Contents = (Vec<u8>, Vec<u8>, [u8; 32]);

/// The two files' contents, and a digest of both.
fn read(cert_file: &Path, key_file: &Path) -> Result<Contents, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
    };
    let (cert_pem, key_pem) = (read(cert_file)?, read(key_file)?);
    let digest = Sha256::new()
        .chain_update(&cert_pem)
        .chain_update(&key_pem)
        .finalize()
        .into();
    Ok((cert_pem, key_pem, digest))
}

/// The chain and key of the files' contents, checked to belong together.
fn certified(
    cert_file: &Path,
    key_file: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("{} is not a PEM certificate chain", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|_| format!("{} is not a PEM private key", key_file.display()))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| format!("{} is not a key this server can use", key_file.display()))?;
    let certified = CertifiedKey::new(chain, key);
    certified.keys_match().map_err(|_| {
        format!(
            "the key in {} does not belong to the certificate in {}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// What the listener needs to speak TLS: the acceptor (HTTP/2 and HTTP/1.1 offered by ALPN),
/// and the certificate to keep fresh.
#[derive(Clone)]
pub struct Tls {
    /// Accepts TLS connections.
    pub acceptor: TlsAcceptor,
    /// The certificate in use.
    pub certificate: Arc<ReloadingCertificate>,
    /// The verifier of client certificates, when they are asked for.
    pub clients: Option<Arc<SvidVerifier>>,
    /// How often its files are checked.
    pub reload_interval: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("certificate", &self.certificate.cert_file)
            .field("reload_interval", &self.reload_interval)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate and key of `settings` (paths as given: the loader resolves them).
    pub fn new(settings: &TlsSettings) -> Result<Self, String> {
        let certificate = Arc::new(ReloadingCertificate::open(
            settings.cert_file.clone(),
            settings.key_file.clone(),
        )?);
        let clients = settings
            .client_auth
            .as_ref()
            .map(|clients| SvidVerifier::new(clients, certificate.provider.clone()).map(Arc::new))
            .transpose()?;
        let builder = rustls::ServerConfig::builder_with_provider(certificate.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS cannot be set up: {err}"))?;
        let builder = match &clients {
            Some(clients) => builder.with_client_cert_verifier(clients.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(certificate.clone());
        if clients.is_some() {
            // A resumed session keeps the identity of its first handshake: an SVID that has
            // expired since (they live an hour) or whose CA left the bundle would go on being
            // accepted. Every connection verifies its certificate again.
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
            clients,
            reload_interval: Duration::from_secs(settings.reload_interval_secs.max(1)),
        })
    }
}

impl Tls {
    /// Checks the certificate's files and the trust bundles every `reload_interval`, forever;
    /// run in the background. A file that is not usable is reported and the old one kept.
    pub async fn watch(self) {
        loop {
            tokio::time::sleep(self.reload_interval).await;
            match self.certificate.reload() {
                Ok(true) => {
                    tracing::info!(file = %self.certificate.cert_file.display(), "TLS certificate reloaded")
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "the new TLS certificate is not usable; the current one stays");
                }
            }
            match self.clients.as_ref().map(|clients| clients.reload()) {
                Some(Ok(true)) => tracing::info!("trust bundles reloaded"),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "the new trust bundles are not usable; the current ones stay");
                }
                Some(Ok(false)) | None => {}
            }
        }
    }

    /// The workload a finished handshake's client certificate proved, if one was presented
    /// (the verifier has checked it already).
    pub fn peer_workload(connection: &rustls::ServerConnection) -> Option<PeerWorkload> {
        let leaf = connection.peer_certificates()?.first()?;
        spiffe_id_of(leaf).ok().map(PeerWorkload)
    }
}
