//! The listener: connections, limits, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::AppState;
use crate::app::metrics::Metrics;
use crate::app::reload::{Generation, ReloadSource, Reloader};
use crate::config::Loaded;
use crate::tls::{PeerWorkload, Tls};

const TOO_MANY_CONNECTIONS: &str = concat!(
    "HTTP/1.1 429 Too Many Requests\r\n",
    "content-type: application/json\r\n",
    "content-length: 62\r\n",
    "retry-after: 1\r\n",
    "connection: close\r\n\r\n",
    r#"{"error":"too many connections","code":"too_many_connections"}"#,
);

/// A server ready to accept connections.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    tls: Option<Tls>,
    /// What reloads the configuration, when it came from a file.
    reloader: Option<Arc<Reloader>>,
}

impl Server {
    /// Binds the listener, prepares authentication and checks the stores once.
    pub async fn bind(loaded: Loaded, metrics: Arc<Metrics>) -> Result<Self, String> {
        let listener = TcpListener::bind(loaded.server.listen)
            .await
            .map_err(|err| format!("cannot listen on {}: {err}", loaded.server.listen))?;
        let bound = listener.local_addr().map_err(|err| err.to_string())?;
        let tls = loaded.server.tls.as_ref().map(Tls::new).transpose()?;
        let state = loaded.into_state(metrics, bound).await?;
        Ok(Self {
            listener,
            state,
            tls,
            reloader: None,
        })
    }

    /// Reloads the configuration from `source` on SIGHUP, on `POST /api/reload`, and when its
    /// files (`watched`, as loaded) change.
    #[must_use]
    pub fn reloading(mut self, source: ReloadSource, watched: Vec<std::path::PathBuf>) -> Self {
        let reloader = Reloader::new(
            source,
            self.state.metrics.clone(),
            self.state.bound,
            (*self.state.settings).clone(),
            watched,
        );
        self.state = self.state.with_reloader(Arc::downgrade(&reloader));
        self.reloader = Some(reloader);
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.bound
    }

    /// Serves until `shutdown` completes, then stops accepting and lets the requests in flight
    /// finish (up to the configured grace period).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self {
            listener,
            state,
            tls,
            reloader,
        } = self;
        let reloader_task = tls.as_ref().map(|tls| tokio::spawn(tls.clone().watch()));
        let settings = state.settings.clone();
        let current = Arc::new(ArcSwap::from_pointee(Generation::start(state, 1)));
        let mut reloads = Vec::new();
        if let Some(reloader) = reloader {
            reloader.install(current.clone());
            #[cfg(unix)]
            reloads.push(tokio::spawn(reloader.clone().on_hangup()));
            if settings.reload_watch_ms > 0 {
                reloads.push(tokio::spawn(
                    reloader.watch(Duration::from_millis(settings.reload_watch_ms)),
                ));
            }
        }
        let service = Connection {
            current: current.clone(),
            peer: None,
        };
        let connections = Arc::new(Semaphore::new(settings.max_connections));
        let graceful = GracefulShutdown::new();
        let header_timeout = Duration::from_millis(settings.header_read_timeout_ms);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            // hyper's defaults let one connection hold hundreds of KiB of headers.
            .max_buf_size(settings.max_header_bytes.max(8192))
            .max_headers(settings.max_headers)
            .keep_alive(true);
        // Over TLS, HTTP/2 as well when ALPN chose it, under the same header limits.
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(Some(256));
        tokio::pin!(shutdown);
        tracing::info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "listening");
        loop {
            let (mut stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                // Over the connection cap: answer without parsing anything, and close.
                tokio::spawn(async move {
                    let _ = stream.write_all(TOO_MANY_CONNECTIONS.as_bytes()).await;
                });
                continue;
            };
            if let Some(tls) = &tls {
                let (acceptor, service) = (tls.acceptor.clone(), service.clone());
                let (http1, http2, watcher) = (http.clone(), http2.clone(), graceful.watcher());
                tokio::spawn(async move {
                    // The handshake gets the time the headers get: a client that never
                    // finishes it must not hold a connection slot.
                    let stream =
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    // A client certificate's workload goes with each request of the
                    // connection, for authentication to read.
                    let service = Connection {
                        peer: Tls::peer_workload(stream.get_ref().1),
                        ..service
                    };
                    // ALPN has chosen the version: each goes straight to its own connection
                    // type (hyper's version-sniffing builder cost 18 µs per request).
                    let ended = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let connection = http2.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(connection).await
                    } else {
                        let connection = http1.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(connection).await
                    };
                    if let Err(err) = ended {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                    drop(permit);
                });
                continue;
            }
            let connection = http.serve_connection(TokioIo::new(stream), service.clone());
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        tracing::info!("shutting down: draining requests in flight");
        let grace = Duration::from_millis(settings.shutdown_grace_ms);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still in flight after the grace period were cut off");
        }
        for task in reloader_task.into_iter().chain(reloads) {
            task.abort();
        }
        // The generation in force stops its tasks as it goes.
        drop(current);
        tracing::info!("stopped");
    }
}

/// The application as one connection serves it: each request goes to the generation in force
/// when it arrives (and stays with it to its end), and carries the workload the connection's
/// client certificate proved, if any.
#[derive(Clone)]
struct Connection {
    current: Arc<ArcSwap<Generation>>,
    peer: Option<PeerWorkload>,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Connection {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn call(&self, mut request: http::Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(peer) = &self.peer {
            request.extensions_mut().insert(peer.clone());
        }
        // A router is always ready, and cloning it clones an `Arc`.
        let mut router = self.current.load().router.clone();
        tower::Service::call(&mut router, request)
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_raw_429_declares_its_true_length() {
        let (head, body) = super::TOO_MANY_CONNECTIONS.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
