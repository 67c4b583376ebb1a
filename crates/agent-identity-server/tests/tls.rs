//! TLS on the listener, with certificates made here (rcgen): HTTP/1.1 and HTTP/2, a certificate
//! replaced while a client is connected, and files that do not belong together.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::cli::serve::Server;
use agent_identity_server::config::load_str;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A CA of this test, and what it signs.
struct Authority {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
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
    let loaded = load_str(CONFIG, &dir, "test".into(), &|_| None, None).unwrap();
    let server = Server::bind(loaded, Arc::new(Metrics::new()))
        .await
        .unwrap();
    let address = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
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

    stop.send(()).unwrap();
    drop(kept);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
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
