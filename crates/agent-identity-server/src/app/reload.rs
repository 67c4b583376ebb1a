//! Hot reload: the configuration read again on SIGHUP, on `POST /api/reload`, or when its file
//! changes; checked in full, then swapped in at once.
//!
//! Each configuration in force is a [`Generation`]: the application (router, stores, gates,
//! authentication) and the tasks that serve it (store health, policy files, JWKS refresh). A
//! reload builds the next generation beside the current one, over what the process retains
//! (memory state, keys made at start), and swaps it in; a request already in flight keeps the
//! generation it started on and finishes there. A configuration that cannot be used is refused
//! with every error logged, and the generation in force stays.
//!
//! What only a restart can change (the listener's address and its TLS settings) refuses a
//! reload that changes it; the listener's limits (connections, header sizes and timeouts,
//! shutdown grace) are read at start, and a reload that changes them says so.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use agent_identity::ResolutionObserver;
use agent_identity::layer::{json_error, no_store};
use arc_swap::ArcSwap;
use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::settings::ServerSettings;
use super::{AppState, app};
use crate::auth::{Caller, Permission};
use crate::config::{LoadError, Retained, check_exposure_of, load_file_retaining};

/// One configuration in force: its application, and the tasks that serve it (stopped when the
/// generation is dropped, once the next one is in force).
#[derive(Debug)]
pub struct Generation {
    /// The application.
    pub router: axum::Router,
    /// 1 as started, one more at each reload applied.
    pub number: u64,
    tasks: Vec<JoinHandle<()>>,
}

impl Generation {
    /// The generation `number` serving `state`: its tasks started.
    pub fn start(state: AppState, number: u64) -> Self {
        let settings = state.settings.clone();
        let mut tasks =
            vec![tokio::spawn(state.health.clone().run(
                Duration::from_millis(settings.health_interval_ms.max(100)),
            ))];
        if let Some(files) = &state.policies {
            tasks.push(tokio::spawn(files.clone().watch()));
        }
        for verifier in state.authenticator.jwt_verifiers() {
            tasks.push(tokio::spawn(verifier.refresh_periodically()));
        }
        Self {
            router: app(state),
            number,
            tasks,
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where a reload reads the configuration, and how the first load was made (the same
/// observer, the same `--listen`, over the same retained state).
#[derive(Clone)]
pub struct ReloadSource {
    /// The configuration file.
    pub path: PathBuf,
    /// The `--listen` given on the command line, which overrides the file's.
    pub listen: Option<SocketAddr>,
    /// The resolution observer (metrics).
    pub observer: Option<Arc<dyn ResolutionObserver>>,
    /// What the process keeps across reloads.
    pub retained: Arc<Retained>,
}

impl std::fmt::Debug for ReloadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadSource")
            .field("path", &self.path)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// Why a reload was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration cannot be used; every problem is listed.
    #[error("the configuration is not valid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// It changes what only a restart can.
    #[error("{0}")]
    NeedsRestart(String),
}

/// Reloads the configuration of a running server.
pub struct Reloader {
    source: ReloadSource,
    metrics: Arc<Metrics>,
    bound: SocketAddr,
    /// The settings the listener was started with.
    started: ServerSettings,
    current: OnceLock<Arc<ArcSwap<Generation>>>,
    /// One reload at a time; the digest of the files last read.
    running: tokio::sync::Mutex<()>,
    seen: Mutex<Option<[u8; 32]>>,
    /// The files the configuration was read from (the file and its rules file).
    watched: Mutex<Vec<PathBuf>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader of `source` for a server bound to `bound`, started with `started` and the
    /// files `watched`.
    pub fn new(
        source: ReloadSource,
        metrics: Arc<Metrics>,
        bound: SocketAddr,
        started: ServerSettings,
        watched: Vec<PathBuf>,
    ) -> Arc<Self> {
        let reloader = Arc::new(Self {
            source,
            metrics,
            bound,
            started,
            current: OnceLock::new(),
            running: tokio::sync::Mutex::new(()),
            seen: Mutex::new(None),
            watched: Mutex::new(Vec::new()),
        });
        reloader.set_watched(watched);
        reloader
    }

    /// Serves `current` from now on (the server's generations).
    pub fn install(&self, current: Arc<ArcSwap<Generation>>) {
        let _ = self.current.set(current);
    }

    fn set_watched(&self, watched: Vec<PathBuf>) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = digest(&watched);
        *self.watched.lock().unwrap_or_else(PoisonError::into_inner) = watched;
    }

    /// Reads the configuration again and swaps it in: the new generation's number. `trigger`
    /// (`signal`, `api`, `file`) goes to the log.
    pub async fn reload(self: &Arc<Self>, trigger: &'static str) -> Result<u64, ReloadError> {
        let _one = self.running.lock().await;
        let started = Instant::now();
        let outcome = self.build().await;
        self.metrics.config_reload(outcome.is_ok());
        match outcome {
            Ok((generation, rules)) => {
                let number = generation.number;
                if let Some(current) = self.current.get() {
                    current.store(Arc::new(generation));
                }
                self.metrics.config_loaded(number);
                tracing::info!(
                    generation = number,
                    trigger,
                    rules,
                    took_ms = started.elapsed().as_millis(),
                    "configuration reloaded"
                );
                Ok(number)
            }
            Err(err) => {
                tracing::error!(trigger, error = %err, "configuration reload refused: the configuration in force stays");
                Err(err)
            }
        }
    }

    async fn build(self: &Arc<Self>) -> Result<(Generation, usize), ReloadError> {
        let source = self.source.clone();
        // Reading files and building clients blocks: off the runtime's workers.
        let loaded = tokio::task::spawn_blocking(move || {
            load_file_retaining(&source.path, source.observer.clone(), &source.retained)
        })
        .await
        .map_err(|err| ReloadError::Invalid(vec![format!("the reload stopped: {err}")]))?
        .map_err(|err: LoadError| {
            ReloadError::Invalid(err.errors.iter().map(ToString::to_string).collect())
        })?;
        let mut loaded = loaded;
        if let Some(listen) = self.source.listen {
            loaded.server.listen = listen;
            // The file was checked against its own address; the one in force is `--listen`'s
            // (a reload must not open it to unauthenticated callers where the start did not).
            check_exposure_of(&loaded).map_err(|err| {
                ReloadError::Invalid(err.errors.iter().map(ToString::to_string).collect())
            })?;
        }
        self.check_restart_only(&loaded.server)?;
        let watched = loaded.watched.clone();
        let rules = loaded.router.rule_count();
        let state = loaded
            .into_state(self.metrics.clone(), self.bound)
            .await
            .map_err(|problem| ReloadError::Invalid(vec![problem]))?
            .with_reloader(Arc::downgrade(self));
        let number = self.current.get().map_or(1, |c| c.load().number) + 1;
        self.set_watched(watched);
        Ok((Generation::start(state, number), rules))
    }

    fn check_restart_only(&self, next: &ServerSettings) -> Result<(), ReloadError> {
        let started = &self.started;
        if next.listen != started.listen {
            return Err(ReloadError::NeedsRestart(format!(
                "`server.listen` changes from {} to {}: a restart applies it",
                started.listen, next.listen
            )));
        }
        if format!("{:?}", next.tls) != format!("{:?}", started.tls) {
            return Err(ReloadError::NeedsRestart(
                "`[server.tls]` changes: a restart applies it (new certificate files in place are read without one)".into(),
            ));
        }
        let limits = |s: &ServerSettings| {
            (
                s.max_connections,
                s.max_header_bytes,
                s.max_headers,
                s.header_read_timeout_ms,
                s.shutdown_grace_ms,
            )
        };
        if limits(next) != limits(started) {
            tracing::warn!(
                "the listener's limits (max_connections, max_header_bytes, max_headers, header_read_timeout_ms, shutdown_grace_ms) are applied at the next restart"
            );
        }
        Ok(())
    }

    /// Reloads whenever the files the configuration was read from change, checking every
    /// `interval`, forever. A file that changes to something unusable is reported once, not at
    /// every check.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let watched = self
                .watched
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let now = digest(&watched);
            let changed = {
                let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                let changed = now.is_some() && now != *seen;
                if changed {
                    *seen = now;
                }
                changed
            };
            if changed {
                let _ = self.reload("file").await;
            }
        }
    }

    /// Reloads at every SIGHUP, forever.
    #[cfg(unix)]
    pub async fn on_hangup(self: Arc<Self>) {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("SIGHUP cannot be watched: reload with POST /api/reload instead");
            return;
        };
        while hangups.recv().await.is_some() {
            let _ = self.reload("signal").await;
        }
    }
}

/// The SHA-256 of the files' contents, in order; `None` when one cannot be read (a file being
/// replaced: the next check sees it whole).
fn digest(files: &[PathBuf]) -> Option<[u8; 32]> {
    let mut hash = Sha256::new();
    for file in files {
        let bytes = std::fs::read(file).ok()?;
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(&bytes);
    }
    Some(hash.finalize().into())
}

/// `POST /api/reload`: reads the configuration again and swaps it in; needs the `reload`
/// permission. 200 with the new generation, 422 with every error when the configuration
/// cannot be used (the one in force stays).
pub(crate) async fn reload(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let allowed = request
        .extensions()
        .get::<Caller>()
        .is_some_and(|caller| caller.permissions.contains(Permission::Reload));
    if !allowed {
        return json_error(
            StatusCode::FORBIDDEN,
            "permission_required",
            "this needs an authenticated caller with the `reload` permission",
        );
    }
    let Some(reloader) = state.reloader.as_ref().and_then(Weak::upgrade) else {
        return json_error(
            StatusCode::CONFLICT,
            "not_reloadable",
            "this server's configuration comes from no file (the environment, or an embedder): it cannot be reloaded",
        );
    };
    match reloader.reload("api").await {
        Ok(generation) => no_store(Json(json!({ "generation": generation })).into_response()),
        Err(ReloadError::Invalid(errors)) => no_store(
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": "the configuration is not valid; the one in force stays",
                    "code": "invalid_configuration",
                    "errors": errors,
                })),
            )
                .into_response(),
        ),
        Err(ReloadError::NeedsRestart(problem)) => no_store(
            (
                StatusCode::CONFLICT,
                Json(json!({"error": problem, "code": "restart_required"})),
            )
                .into_response(),
        ),
    }
}
