//! The agent-identity sidecar: resolves credentials over HTTP for backends and agents.
//!
//! The binary is `agent-identity` (`serve`, `check`, `resolve`, `import`); this library holds its parts so
//! that tests and embedders can drive them. The HTTP contract is that of the reference sidecar,
//! so its Python clients work unchanged: `GET /health` and `GET /api/health`,
//! `POST /api/resolve`, `POST /api/migrate/resolve`; plus `GET /metrics`, and with an `oauth`
//! store the [`app::oauth`] endpoints through which users connect their own accounts.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use agent_identity_server::{config, app::metrics::Metrics, cli::serve::{Server, shutdown_signal}};
//!
//! let metrics = Arc::new(Metrics::new());
//! let loaded = config::load_file("agent-identity.toml".as_ref(), Some(Arc::new(metrics::MetricsObserver(metrics.clone()))))?;
//! let server = Server::bind(loaded, metrics).await?;
//! server.run(shutdown_signal()).await;
//! # Ok(()) }
//! # use agent_identity_server::app::metrics;
//! ```

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
mod environment;
pub mod logging;
pub mod notify;
mod stores;
pub mod tls;

use app::settings::LogFormat;

/// Sends logs to standard error, as text or JSON lines, filtered by `RUST_LOG` (default
/// `default_level`, with vaultrs's own request logs off). Lines are written by a background thread, so that a request never waits on
/// the terminal or a pipe; none is dropped (a full buffer makes the writer wait). Keep the
/// returned guard alive until exit: dropping it flushes what is buffered.
pub fn init_logging(
    format: LogFormat,
    default_level: &str,
) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("agent-identity-log")
        // Buffered: the writer thread flushes whenever its queue runs empty, so lines are
        // batched into few writes under load and still appear at once when traffic is light.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    // vaultrs logs each failed request (the 404 of an unknown ref included) at ERROR; the
    // store's own errors say what matters, so its chatter is off unless RUST_LOG asks for it.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},vaultrs=off,rustify=off")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(false)
            .fmt_fields(logging::PlainFields)
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}
