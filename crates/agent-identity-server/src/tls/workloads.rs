//! Client certificates that are X.509-SVIDs: the calling workload proves its SPIFFE ID in the
//! TLS handshake.
//!
//! A certificate is checked against the trust bundle of the trust domain its own SPIFFE ID
//! names, and no other: with one root store for every domain, a workload of `partner.example`
//! could present `spiffe://prod.example/billing` signed by its own CA and pass. The chain is
//! checked by webpki (expiry, signatures, `clientAuth` usage, no CA as leaf); the SPIFFE rules
//! of the leaf (exactly one URI SAN, a well-formed ID with a path, `digitalSignature` and no
//! signing usages) are checked here, with `x509-parser`, since webpki reads no URI names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use agent_identity::SpiffeId;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The `[server.tls.client_auth]` section: which trust domains' workloads may present an
/// X.509-SVID, and whether every client must.
///
/// ```
/// let auth: agent_identity_server::tls::ClientAuthSettings = toml::from_str(
///     "trust_domains = { \"prod.example\" = \"bundles/prod.pem\" }\n",
/// ).unwrap();
/// assert!(auth.required);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthSettings {
    /// Each trust domain's bundle: a PEM file of its CA certificates (as SPIRE's
    /// `spire-agent api fetch x509` writes it), relative to the configuration's directory.
    pub trust_domains: BTreeMap<String, PathBuf>,
    /// Refuse connections without a client certificate (true). When false, a client may still
    /// present one, and its workload is then proven.
    #[serde(default = "default_required")]
    pub required: bool,
}

fn default_required() -> bool {
    true
}

/// The workload a connection's client certificate proved: put in each of its requests'
/// extensions by the listener, read by authentication.
///
/// ```
/// use agent_identity_server::tls::PeerWorkload;
///
/// let peer = PeerWorkload(agent_identity::SpiffeId::parse("spiffe://prod.example/agent")?);
/// assert_eq!(peer.0.trust_domain(), "prod.example");
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerWorkload(pub SpiffeId);

/// Why a client certificate is not an X.509-SVID this server accepts. The messages name the
/// rule broken, never the certificate's contents beyond its SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SvidProblem {
    /// The certificate cannot be parsed.
    #[error("the client certificate is not a well-formed X.509 certificate")]
    Malformed,
    /// No URI SAN, or more than one.
    #[error("an X.509-SVID has exactly one URI SAN; this one has {0}")]
    UriSans(usize),
    /// The URI SAN is no SPIFFE ID, or names a trust domain only.
    #[error("the URI SAN is not a workload's SPIFFE ID: it {0}")]
    NotSpiffeId(String),
    /// The leaf may sign certificates, or lacks `digitalSignature`.
    #[error(
        "an X.509-SVID leaf has key usage digitalSignature and neither keyCertSign nor cRLSign"
    )]
    KeyUsage,
    /// Its trust domain has no bundle here.
    #[error("trust domain `{0}` is not trusted by this server")]
    ForeignDomain(String),
}

/// The SPIFFE ID of an X.509-SVID leaf, checked against the SVID rules of its own fields (the
/// chain is not checked here).
///
/// ```
/// use agent_identity_server::tls::{SvidProblem, spiffe_id_of};
///
/// assert_eq!(spiffe_id_of(b"not a certificate"), Err(SvidProblem::Malformed));
/// ```
pub fn spiffe_id_of(der: &[u8]) -> Result<SpiffeId, SvidProblem> {
    let (_, certificate) = X509Certificate::from_der(der).map_err(|_| SvidProblem::Malformed)?;
    let names = certificate
        .subject_alternative_name()
        .map_err(|_| SvidProblem::Malformed)?;
    let uris: Vec<&str> = names
        .iter()
        .flat_map(|san| san.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    let [uri] = uris[..] else {
        return Err(SvidProblem::UriSans(uris.len()));
    };
    let id = SpiffeId::parse(uri).map_err(SvidProblem::NotSpiffeId)?;
    if id.path().is_empty() {
        return Err(SvidProblem::NotSpiffeId(
            "names a trust domain, not a workload".into(),
        ));
    }
    let usage = certificate
        .key_usage()
        .map_err(|_| SvidProblem::Malformed)?
        .ok_or(SvidProblem::KeyUsage)?
        .value;
    if !usage.digital_signature() || usage.key_cert_sign() || usage.crl_sign() {
        return Err(SvidProblem::KeyUsage);
    }
    Ok(id)
}

/// One trust domain's chain verifier, by domain name.
type Verifiers = BTreeMap<String, Arc<dyn ClientCertVerifier>>;

/// Verifies client certificates as X.509-SVIDs against the bundle of their own trust domain;
/// the bundle files are read again when they change ([`SvidVerifier::reload`]).
#[derive(Debug)]
pub struct SvidVerifier {
    bundles: BTreeMap<String, PathBuf>,
    required: bool,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Verifiers, [u8; 32])>,
}

impl SvidVerifier {
    /// Reads every bundle now; an error names the file or trust domain at fault.
    pub fn new(
        settings: &ClientAuthSettings,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        if settings.trust_domains.is_empty() {
            return Err("`client_auth.trust_domains` is empty; name at least one bundle".into());
        }
        for domain in settings.trust_domains.keys() {
            let whole = SpiffeId::parse(&format!("spiffe://{domain}"));
            if !whole.is_ok_and(|id| id.path().is_empty()) {
                return Err(format!(
                    "`client_auth.trust_domains`: `{domain}` is not a trust domain (lower-case letters, digits, `.`, `-`, `_`)"
                ));
            }
        }
        let (verifiers, digest) = load(&settings.trust_domains, &provider)?;
        Ok(Self {
            bundles: settings.trust_domains.clone(),
            required: settings.required,
            provider,
            current: RwLock::new((verifiers, digest)),
        })
    }

    /// Takes the bundles up again if a file changed: `Ok(true)` when new bundles are in use,
    /// `Ok(false)` when nothing changed, an error (the old bundles kept) when a file is not
    /// usable.
    pub fn reload(&self) -> Result<bool, String> {
        let digest = digest_of(&self.bundles)?;
        if self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            == digest
        {
            return Ok(false);
        }
        let loaded = load(&self.bundles, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(true)
    }

    /// The verifier of `domain`'s bundle.
    fn verifier(&self, domain: &str) -> Option<Arc<dyn ClientCertVerifier>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .get(domain)
            .cloned()
    }
}

impl ClientCertVerifier for SvidVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    // Hints are optional (RFC 8446 §4.2.4), and a workload has one SVID to present anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let refused = |problem: SvidProblem| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                problem,
            ))))
        };
        let id = spiffe_id_of(end_entity).map_err(refused)?;
        let verifier = self
            .verifier(id.trust_domain())
            .ok_or_else(|| refused(SvidProblem::ForeignDomain(id.trust_domain().to_owned())))?;
        verifier.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A digest of every bundle file, to tell whether any changed.
fn digest_of(bundles: &BTreeMap<String, PathBuf>) -> Result<[u8; 32], String> {
    let mut digest = Sha256::new();
    for path in bundles.values() {
        digest.update(read(path)?);
    }
    Ok(digest.finalize().into())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// Each domain's verifier, from its bundle file, and the digest of all the files.
fn load(
    bundles: &BTreeMap<String, PathBuf>,
    provider: &Arc<CryptoProvider>,
) -> Result<(Verifiers, [u8; 32]), String> {
    let mut digest = Sha256::new();
    let mut verifiers = Verifiers::new();
    for (domain, path) in bundles {
        let pem = read(path)?;
        digest.update(&pem);
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate
                .map_err(|_| format!("{} is not a PEM certificate bundle", path.display()))?;
            roots.add(certificate).map_err(|err| {
                format!(
                    "{} holds a certificate that cannot be a root: {err}",
                    path.display()
                )
            })?;
        }
        if roots.is_empty() {
            return Err(format!(
                "{} (trust domain `{domain}`) holds no certificate",
                path.display()
            ));
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|err| format!("the bundle of `{domain}` cannot be used: {err}"))?;
        verifiers.insert(domain.clone(), verifier);
    }
    Ok((verifiers, digest.finalize().into()))
}
