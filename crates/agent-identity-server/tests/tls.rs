//! TLS on the listener, with certificates made here (rcgen): HTTP/1.1 and HTTP/2, a certificate
//! replaced while a client is connected, and files that do not belong together; client
//! certificates that are X.509-SVIDs, a CA per trust domain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

mod running;
use running::Running;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity_server::config::load_str;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A CA of this test, and what it signs.
struct Authority {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

/// What an SVID of [`Authority::svid`] is like.
#[derive(Clone, Copy)]
enum Svid<'a> {
    /// Valid, naming this SPIFFE ID.
    Valid(&'a str),
    /// Naming this ID, expired yesterday.
    Expired(&'a str),
    /// Naming this ID, with key usage `keyCertSign` as well.
    Signing(&'a str),
    /// With these URI SANs (none, or several).
    Uris(&'a [&'a str]),
}

impl Authority {
    /// An SVID signed by this CA: (certificate DER, key DER).
    fn svid(
        &self,
        kind: Svid<'_>,
    ) -> (
        CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let uris: Vec<&str> = match kind {
            Svid::Valid(id) | Svid::Expired(id) | Svid::Signing(id) => vec![id],
            Svid::Uris(uris) => uris.to_vec(),
        };
        params.subject_alt_names = uris
            .into_iter()
            .map(|uri| SanType::URI(uri.try_into().unwrap()))
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if let Svid::Signing(_) = kind {
            params.key_usages.push(KeyUsagePurpose::KeyCertSign);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Svid::Expired(_) = kind {
            params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(2);
            params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        }
        let key = KeyPair::generate().unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (
            certificate.der().clone(),
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
    }

    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "agent-identity test CA");
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Self { certificate, key }
    }

    /// A server certificate for `localhost` and 127.0.0.1 named `name`: (chain PEM, key PEM,
    /// certificate DER).
    fn server(&self, name: &str) -> (String, String, Vec<u8>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        let key = KeyPair::generate().unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (
            certificate.pem(),
            key.serialize_pem(),
            certificate.der().to_vec(),
        )
    }
}

fn directory(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agent-identity-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the server's files as a secret mount is updated: each file replaced whole.
fn install(dir: &Path, chain: &str, key: &str) {
    for (name, text) in [("server.pem", chain), ("server-key.pem", key)] {
        let staged = dir.join(format!(".{name}.new"));
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, dir.join(name)).unwrap();
    }
}

const CONFIG: &str = "[server]\nlisten = \"127.0.0.1:0\"\n\n[server.tls]\ncert_file = \"server.pem\"\nkey_file = \"server-key.pem\"\nreload_interval_secs = 1\n";

fn connector(authority: &Authority) -> TlsConnector {
    agent_identity::identity_http::install_tls_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(authority.certificate.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    connector: &TlsConnector,
    address: SocketAddr,
) -> TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The certificate the server presented on `stream`.
fn presented(stream: &TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    let (_, session) = stream.get_ref();
    let chain: &[CertificateDer<'_>] = session.peer_certificates().unwrap();
    chain[0].to_vec()
}

/// One `GET /health` on a kept-alive connection: the status line.
async fn health(stream: &mut TlsStream<tokio::net::TcpStream>, address: SocketAddr) -> String {
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: localhost:{}\r\n\r\n",
        address.port()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "the connection was closed");
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            if body.len() >= length {
                return head.lines().next().unwrap().to_owned();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http1_and_http2_and_takes_a_new_certificate_without_dropping_connections() {
    let authority = Authority::new();
    let dir = directory("rotation");
    let (chain, key, first) = authority.server("first");
    install(&dir, &chain, &key);
    std::fs::write(dir.join("ca.pem"), authority.certificate.pem()).unwrap();
    let server = Running::serve_in(CONFIG, &dir, &|_| None).await;
    let address = server.address;
    let connector = connector(&authority);

    // HTTP/1.1 over TLS, on a connection kept open.
    let mut kept = connect(&connector, address).await;
    assert_eq!(presented(&kept), first);
    assert_eq!(health(&mut kept, address).await, "HTTP/1.1 200 OK");

    // HTTP/2, by ALPN (curl, built with nghttp2).
    let output = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(dir.join("ca.pem"))
        .arg(format!("https://localhost:{}/health", address.port()))
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "2 200",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Plain HTTP on the TLS port gets no answer.
    let mut plain = tokio::net::TcpStream::connect(address).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));

    // The certificate is replaced: new connections get the new one, the open one goes on.
    let (chain, key, second) = authority.server("second");
    install(&dir, &chain, &key);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = connect(&connector, address).await;
        if presented(&fresh) == second {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not taken up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(health(&mut kept, address).await, "HTTP/1.1 200 OK");
    assert_eq!(presented(&kept), first);

    // A key that does not belong to the certificate is not taken up: the current one stays.
    let (_, stray_key, _) = authority.server("stray");
    install(&dir, &chain, &stray_key);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh = connect(&connector, address).await;
    assert_eq!(presented(&fresh), second);

    drop(kept);
    server.stop().await;
}

#[test]
fn tls_files_that_are_missing_or_do_not_belong_together_stop_the_configuration() {
    let authority = Authority::new();
    let dir = directory("refused");
    let err = load_str(CONFIG, &dir, "test".into(), &|_| None, None).unwrap_err();
    assert!(err.to_string().contains("server, field `tls`"), "{err}");
    assert!(err.to_string().contains("server.pem"), "{err}");
    let (chain, _, _) = authority.server("one");
    let (_, other_key, _) = authority.server("two");
    install(&dir, &chain, &other_key);
    let err = load_str(CONFIG, &dir, "test".into(), &|_| None, None).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
}

/// A client trusting `server_ca` and presenting `svid`, if any.
fn svid_connector(
    server_ca: &Authority,
    svid: Option<(
        CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> TlsConnector {
    agent_identity::identity_http::install_tls_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.certificate.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match svid {
        Some((certificate, key)) => builder
            .with_client_auth_cert(vec![certificate], key)
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// POSTs `body` to `/api/resolve` over a new connection: the status code and the JSON
/// answer, or `None` when the server refused the connection (a client certificate refused
/// in the handshake shows only when the client reads, under TLS 1.3).
async fn resolve_over(
    connector: &TlsConnector,
    address: SocketAddr,
    headers: &str,
    body: &serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()?;
    let body = body.to_string();
    let request = format!(
        "POST /api/resolve HTTP/1.1\r\nHost: localhost:{}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
        address.port(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .ok()?;
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Some((status, serde_json::from_str(body).unwrap()))
}

/// Alice's request, naming workload `spiffe` when given.
fn alice(spiffe: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({"userId": "alice", "resourceId": "r",
        "resourceKind": "personal", "provider": "openai", "model": "gpt-4o",
        "action": "read", "traceId": "t"});
    if let Some(spiffe) = spiffe {
        body["spiffeId"] = spiffe.into();
    }
    body
}

/// Two trust domains' CAs and their bundles in `dir`, and a server certificate.
fn workload_files(dir: &Path) -> (Authority, Authority, Authority) {
    let (server_ca, prod, partner) = (Authority::new(), Authority::new(), Authority::new());
    let (chain, key, _) = server_ca.server("sidecar");
    install(dir, &chain, &key);
    std::fs::write(dir.join("prod.pem"), prod.certificate.pem()).unwrap();
    std::fs::write(dir.join("partner.pem"), partner.certificate.pem()).unwrap();
    (server_ca, prod, partner)
}

const WORKLOAD_RULES: &str = r#"
[stores.default]
type = "memory"

[[stores.default.credentials]]
id = "cred-billing"
kind = "fixed"
status = "active"
ref = "billing"

[[stores.default.credentials]]
id = "cred-alice"
kind = "user-delegated"
status = "active"
ref = "alice"

[[rules]]
id = "billing-workload"
credentialRef = "billing"
priority = 5
matchSpiffeId = "spiffe://prod.example/billing"

[[rules]]
id = "alice"
credentialRef = "alice"
priority = 1
matchUserId = "alice"
"#;

const MTLS: &str = "[server]\nlisten = \"127.0.0.1:0\"\n\n[server.tls]\ncert_file = \"server.pem\"\nkey_file = \"server-key.pem\"\nreload_interval_secs = 1\n\n[server.tls.client_auth]\ntrust_domains = { \"prod.example\" = \"prod.pem\", \"partner.example\" = \"partner.pem\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x509_svid_proves_the_workload_against_its_own_trust_domain_only() {
    let dir = directory("svid");
    let (server_ca, prod, partner) = workload_files(&dir);
    let config = format!("{MTLS}{WORKLOAD_RULES}\n[auth]\nmode = \"x509-svid\"\n");
    let server = Running::serve_in(&config, &dir, &|_| None).await;
    let address = server.address;
    let billing = svid_connector(
        &server_ca,
        Some(prod.svid(Svid::Valid("spiffe://prod.example/billing"))),
    );

    // The certificate's workload is the caller's: named or not in the body, it gets the
    // workload's rule.
    for named in [None, Some("spiffe://prod.example/billing")] {
        let (status, body) = resolve_over(&billing, address, "", &alice(named))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["credentialId"], "cred-billing");
        assert_eq!(body["resolvedFor"], "service");
    }
    // Naming another workload is refused.
    let (status, body) = resolve_over(
        &billing,
        address,
        "",
        &alice(Some("spiffe://prod.example/payroll")),
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "caller_workload_mismatch");

    // A workload of the other trusted domain, with its own CA, is a workload too (not billing).
    let partner_agent = svid_connector(
        &server_ca,
        Some(partner.svid(Svid::Valid("spiffe://partner.example/agent"))),
    );
    let (status, body) = resolve_over(&partner_agent, address, "", &alice(None))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["credentialId"], "cred-alice");

    // Refused in the handshake: no certificate; expired; the partner's CA vouching for a prod
    // workload; a trust domain with no bundle here; no URI SAN; two URI SANs.
    let foreign = Authority::new();
    let refused = [
        ("no certificate", None),
        (
            "expired",
            Some(prod.svid(Svid::Expired("spiffe://prod.example/billing"))),
        ),
        (
            "signed by another domain's CA",
            Some(partner.svid(Svid::Valid("spiffe://prod.example/billing"))),
        ),
        (
            "an untrusted domain",
            Some(foreign.svid(Svid::Valid("spiffe://foreign.example/billing"))),
        ),
        ("no URI SAN", Some(prod.svid(Svid::Uris(&[])))),
        (
            "two URI SANs",
            Some(prod.svid(Svid::Uris(&[
                "spiffe://prod.example/billing",
                "spiffe://prod.example/payroll",
            ]))),
        ),
        (
            "a leaf that may sign certificates",
            Some(prod.svid(Svid::Signing("spiffe://prod.example/billing"))),
        ),
        (
            "a trust domain's own ID",
            Some(prod.svid(Svid::Valid("spiffe://prod.example"))),
        ),
    ];
    for (case, svid) in refused {
        let connector = svid_connector(&server_ca, svid);
        let answer = resolve_over(&connector, address, "", &alice(None)).await;
        assert!(answer.is_none(), "{case}: answered {answer:?}");
    }

    // The prod bundle is replaced by a new CA's: its SVIDs are taken, the old CA's are not, not
    // even from a client that could resume a session of before.
    let next = Authority::new();
    std::fs::write(dir.join(".prod.pem.new"), next.certificate.pem()).unwrap();
    std::fs::rename(dir.join(".prod.pem.new"), dir.join("prod.pem")).unwrap();
    let renewed = svid_connector(
        &server_ca,
        Some(next.svid(Svid::Valid("spiffe://prod.example/billing"))),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while resolve_over(&renewed, address, "", &alice(None))
        .await
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new bundle was not taken up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        resolve_over(&billing, address, "", &alice(None))
            .await
            .is_none()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_and_an_api_key_must_stand_for_the_same_workload() {
    const BILLING_KEY: &str = "billing-key-0123456789abcdef";
    const SERVICE_KEY: &str = "service-key-0123456789abcdef";
    let dir = directory("svid-and-key");
    let (server_ca, prod, _) = workload_files(&dir);
    let config = format!(
        "{MTLS}required = false\n{WORKLOAD_RULES}
[auth]
mode = \"api-key\"

[[auth.api_keys]]
name = \"billing\"
env = \"BILLING_KEY\"
any_user = true
spiffe_id = \"spiffe://prod.example/billing\"

[[auth.api_keys]]
name = \"service\"
env = \"SERVICE_KEY\"
any_user = true
"
    );
    let env = |name: &str| match name {
        "BILLING_KEY" => Some(BILLING_KEY.to_owned()),
        "SERVICE_KEY" => Some(SERVICE_KEY.to_owned()),
        _ => None,
    };
    let server = Running::serve_in(&config, &dir, &env).await;
    let address = server.address;
    let key = |key: &str| format!("x-api-key: {key}\r\n");
    let payroll = svid_connector(
        &server_ca,
        Some(prod.svid(Svid::Valid("spiffe://prod.example/payroll"))),
    );
    let billing = svid_connector(
        &server_ca,
        Some(prod.svid(Svid::Valid("spiffe://prod.example/billing"))),
    );
    let anonymous = svid_connector(&server_ca, None);

    // The billing key from the payroll workload's connection: refused, naming both.
    let (status, body) = resolve_over(&payroll, address, &key(BILLING_KEY), &alice(None))
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("spiffe://prod.example/payroll")
            && message.contains("spiffe://prod.example/billing"),
        "{message}"
    );
    // The key that proves no workload takes the certificate's; the key's own workload and the
    // certificate's agree; without a certificate, the key alone.
    for (connector, presented, named, expected) in [
        (
            &payroll,
            SERVICE_KEY,
            Some("spiffe://prod.example/billing"),
            403,
        ),
        (&billing, SERVICE_KEY, None, 200),
        (&billing, BILLING_KEY, None, 200),
        (&anonymous, BILLING_KEY, None, 200),
        (
            &anonymous,
            SERVICE_KEY,
            Some("spiffe://prod.example/billing"),
            403,
        ),
    ] {
        let (status, body) = resolve_over(connector, address, &key(presented), &alice(named))
            .await
            .unwrap();
        assert_eq!(status, expected, "{body}");
        if status == 200 {
            assert_eq!(body["credentialId"], "cred-billing");
        } else {
            assert_eq!(body["code"], "caller_workload_mismatch");
        }
    }
    server.stop().await;
}

#[test]
fn client_certificates_need_a_mode_that_uses_them() {
    let dir = directory("svid-config");
    let _ = workload_files(&dir);
    let load = |config: String| load_str(&config, &dir, "test".into(), &|_| None, None);
    let err = load(format!("{MTLS}{WORKLOAD_RULES}")).unwrap_err();
    assert!(err.to_string().contains("set mode `x509-svid`"), "{err}");
    let err = load(format!(
        "{MTLS}required = false\n{WORKLOAD_RULES}\n[auth]\nmode = \"x509-svid\"\n"
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("every client must present one"),
        "{err}"
    );
    let no_tls = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{WORKLOAD_RULES}\n[auth]\nmode = \"x509-svid\"\n"
    );
    let err = load(no_tls).unwrap_err();
    assert!(
        err.to_string().contains("[server.tls.client_auth]"),
        "{err}"
    );
    let bad_domain = MTLS.replace("\"partner.example\"", "\"Partner\"");
    let err = load(format!(
        "{bad_domain}{WORKLOAD_RULES}\n[auth]\nmode = \"x509-svid\"\n"
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("`Partner` is not a trust domain"),
        "{err}"
    );
    std::fs::write(dir.join("partner.pem"), "not a bundle").unwrap();
    let err = load(format!(
        "{MTLS}{WORKLOAD_RULES}\n[auth]\nmode = \"x509-svid\"\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("partner.pem"), "{err}");
}
