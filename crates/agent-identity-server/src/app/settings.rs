//! The `[server]` section: listener, limits and logging.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The `[server]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to bind (`127.0.0.1:3001`).
    pub listen: SocketAddr,
    /// Allow a non-loopback bind with no caller authentication. Off by default: anyone who
    /// reaches the port could resolve as any user.
    pub allow_unauthenticated: bool,
    /// `Host` values accepted besides the loopback names with the bound port (DNS rebinding
    /// defence). On a non-loopback bind with this list empty, any `Host` is accepted.
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted; a request with any other `Origin` is refused before its body is
    /// read. Requests without `Origin` (not from a browser) are accepted.
    pub allowed_origins: Vec<String>,
    /// Largest request body, in bytes (413 above).
    pub body_limit_bytes: usize,
    /// Longest a request may take to get its answer's head, in milliseconds (504 `timeout`
    /// after).
    pub request_timeout_ms: u64,
    /// Longest a client may take to send its request headers, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Largest read buffer per connection, in bytes (at least 8,192): a request head larger
    /// than this is refused (431). Bounds what each connection can make the server hold.
    pub max_header_bytes: usize,
    /// Most header fields in a request (431 above).
    pub max_headers: usize,
    /// Most open connections; more are answered 429 and closed.
    pub max_connections: usize,
    /// Most requests in flight; more are answered 429.
    pub max_in_flight: usize,
    /// How long in-flight requests may take to finish on shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// How often the stores' health is checked, in milliseconds.
    pub health_interval_ms: u64,
    /// How often the configuration file (and its rules file) is checked for changes, which
    /// are then reloaded, in milliseconds; 0: only on SIGHUP or `POST /api/reload`.
    pub reload_watch_ms: u64,
    /// Log format.
    pub log_format: LogFormat,
    /// TLS on the listener (`[server.tls]`); plain HTTP when absent.
    pub tls: Option<crate::tls::TlsSettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3001),
            allow_unauthenticated: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 5_000,
            max_header_bytes: 32 * 1024,
            max_headers: 64,
            max_connections: 1024,
            max_in_flight: 512,
            shutdown_grace_ms: 30_000,
            health_interval_ms: 5_000,
            reload_watch_ms: 5_000,
            log_format: LogFormat::Text,
            tls: None,
        }
    }
}

impl ServerSettings {
    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}
