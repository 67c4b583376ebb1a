//! A sidecar of a test, served in this process on a loopback port until stopped.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "a helper module of several test binaries, each using part of it"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::cli::serve::Server;
use agent_identity_server::config::load_str;

/// The sidecar serving a configuration, until [`Running::stop`].
pub(crate) struct Running {
    pub(crate) address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Serves `config` (paths relative to this directory, no environment).
    pub(crate) async fn serve(config: &str) -> Self {
        Self::serve_in(config, Path::new("."), &|_| None).await
    }

    /// Serves `config`, its paths relative to `dir`, reading `env`.
    pub(crate) async fn serve_in(
        config: &str,
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let loaded = load_str(config, dir, "test".into(), env, None).unwrap();
        let server = Server::bind(loaded, Arc::new(Metrics::new()))
            .await
            .unwrap();
        let address = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            stop,
            task,
        }
    }

    /// Stops it, and waits for it to have stopped.
    pub(crate) async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}
