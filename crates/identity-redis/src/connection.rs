//! Where commands go: one server named by its URL, or the master that Redis Sentinel names.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use identity_core::Error;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, ErrorKind, RedisError, ServerErrorKind, TlsMode};

use crate::BACKEND;

/// How the master is found.
enum Source {
    /// A server at a fixed address.
    Direct(Client),
    /// The master of `name` that the sentinels report: asked again whenever the master in use
    /// stops answering or has become a replica (a failover).
    Sentinel {
        client: tokio::sync::Mutex<SentinelClient>,
        name: String,
    },
}

/// The connection in use, made on first use (configuration is read before any runtime runs)
/// and made again after a failover.
pub(crate) struct Connections {
    source: Source,
    current: Mutex<Option<ConnectionManager>>,
    making: tokio::sync::Mutex<()>,
    timeout: Duration,
}

/// What the server's side of a connection needs: its user and password, and the CA for TLS.
pub(crate) struct Credentials<'a> {
    pub(crate) username: Option<&'a str>,
    pub(crate) password: Option<String>,
    pub(crate) ca_pem: Option<Vec<u8>>,
}

fn certificates(ca_pem: Option<Vec<u8>>) -> Option<redis::TlsCertificates> {
    ca_pem.map(|root| redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root),
    })
}

impl Connections {
    /// The server at `url`.
    pub(crate) fn direct(
        url: &str,
        credentials: Credentials<'_>,
        timeout: Duration,
    ) -> Result<Self, String> {
        use redis::IntoConnectionInfo;
        let info = url
            .into_connection_info()
            .map_err(|err| format!("is not a Redis URL: {err}"))?;
        let mut settings = info.redis_settings().clone();
        if let Some(username) = credentials.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &credentials.password {
            settings = settings.set_password(password);
        }
        let info = info.set_redis_settings(settings);
        let client = match certificates(credentials.ca_pem) {
            None => Client::open(info),
            Some(certificates) => Client::build_with_tls(info, certificates),
        }
        .map_err(|err| format!("cannot be used: {err}"))?;
        Ok(Self::over(Source::Direct(client), timeout))
    }

    /// The master that `sentinels` report. A `rediss://` sentinel URL speaks TLS to the
    /// sentinels and to the master alike.
    pub(crate) fn sentinel(
        sentinels: crate::Sentinels<'_>,
        credentials: Credentials<'_>,
        timeout: Duration,
    ) -> Result<Self, String> {
        use redis::IntoConnectionInfo;
        let name = sentinels.master_name;
        let mut addresses = Vec::new();
        let mut tls = false;
        for url in sentinels.urls {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|err| format!("`{url}` is not a Redis URL: {err}"))?;
            tls |= matches!(info.addr(), ConnectionAddr::TcpTls { .. });
            addresses.push(info.addr().clone());
        }
        let mut builder = SentinelClientBuilder::new(addresses, name, SentinelServerType::Master)
            .map_err(|err| format!("cannot be used: {err}"))?;
        if tls {
            builder = builder
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        }
        if let Some(certificates) = certificates(credentials.ca_pem) {
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates);
        }
        if let Some(username) = credentials.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = credentials.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(username) = sentinels.username {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = sentinels.password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        let client = builder
            .build()
            .map_err(|err| format!("cannot be used: {err}"))?;
        Ok(Self::over(
            Source::Sentinel {
                client: tokio::sync::Mutex::new(client),
                name: name.to_owned(),
            },
            timeout,
        ))
    }

    fn over(source: Source, timeout: Duration) -> Self {
        Self {
            source,
            current: Mutex::new(None),
            making: tokio::sync::Mutex::new(()),
            timeout,
        }
    }

    /// Where commands go, for `Debug` (no password).
    pub(crate) fn describe(&self) -> String {
        match &self.source {
            Source::Direct(client) => client.get_connection_info().addr().to_string(),
            Source::Sentinel { name, .. } => format!("the master `{name}` of the sentinels"),
        }
    }

    /// The connection in use, made when there is none.
    pub(crate) async fn get(&self) -> Result<ConnectionManager, Error> {
        if let Some(connection) = self.in_use() {
            return Ok(connection);
        }
        let _one = self.making.lock().await;
        if let Some(connection) = self.in_use() {
            return Ok(connection);
        }
        let made = tokio::time::timeout(self.timeout, self.make()).await;
        let connection = match made {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => return Err(to_error(&err, "connecting")),
            Err(_) => {
                return Err(Error::unavailable(
                    BACKEND,
                    format!("connecting took over {:?}", self.timeout),
                ));
            }
        };
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(connection)
    }

    fn in_use(&self) -> Option<ConnectionManager> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn make(&self) -> Result<ConnectionManager, RedisError> {
        let client = match &self.source {
            Source::Direct(client) => client.clone(),
            Source::Sentinel { client, .. } => client.lock().await.async_get_client().await?,
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        ConnectionManager::new_with_config(client, config).await
    }

    /// Told that a command failed with `err` (`None`: it timed out). Behind sentinels, a master
    /// that stopped answering or became a replica is forgotten, so that the next command asks
    /// the sentinels again; a fixed server's connection reconnects by itself.
    pub(crate) fn failed(&self, err: Option<&RedisError>) {
        if !matches!(self.source, Source::Sentinel { .. }) {
            return;
        }
        let moved = err.is_none_or(|err| {
            err.is_io_error()
                || err.is_connection_dropped()
                || err.is_connection_refusal()
                || err.is_timeout()
                || err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        });
        if moved {
            *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// What a Redis error means to a caller: a refused identity, a refused command, or a server
/// that may answer later. The server's message is kept: it names no secret.
pub(crate) fn to_error(err: &RedisError, what: &str) -> Error {
    match err.kind() {
        ErrorKind::AuthenticationFailed => Error::Unauthenticated {
            backend: BACKEND,
            detail: format!("{what}: {err}"),
        },
        ErrorKind::Server(ServerErrorKind::NoPerm) => Error::PermissionDenied {
            backend: BACKEND,
            detail: format!("{what}: {err}"),
        },
        _ if err.code() == Some("NOAUTH") || err.code() == Some("WRONGPASS") => {
            Error::Unauthenticated {
                backend: BACKEND,
                detail: format!("{what}: {err}"),
            }
        }
        _ => Error::unavailable(BACKEND, format!("{what}: {err}")),
    }
}
