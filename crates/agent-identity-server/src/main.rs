//! `agent-identity`: the sidecar's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agent_identity::{ExplainedOutcome, RequestContext};
use agent_identity_server::app::metrics::{Metrics, MetricsObserver};
use agent_identity_server::app::reload::ReloadSource;
use agent_identity_server::app::settings::LogFormat;
use agent_identity_server::cli::serve::{Server, shutdown_signal};
use agent_identity_server::cli::{check as lint, exec, import};
use agent_identity_server::config::{self, LoadError, Loaded};
use agent_identity_server::init_logging;
use clap::{Parser, Subcommand};

/// Decides which credential an AI agent's request gets.
#[derive(Debug, Parser)]
#[command(name = "agent-identity", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the HTTP API.
    ///
    /// Without --config, reads AGENT_IDENTITY_CREDENTIALS_JSON, AGENT_IDENTITY_RULES_JSON and PORT
    /// (default 3001) like the reference's Docker sidecar, on 127.0.0.1.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen on this address instead of the configured one.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Log format (overrides the configuration).
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Checks a configuration and lints its rules. Exits 1 on an error (or a warning, with
    /// --deny-warnings).
    Check {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Writes the reference's credentials JSON into a configured store that persists (Vault, AWS).
    ///
    /// Secrets come from environment variables named with --secret REF=VARIABLE; a credential
    /// given no secret keeps the one the store already holds for its ref. Exits 0 when every
    /// credential was written, 1 when any failed (each is reported), 2 on bad input.
    Import {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The credentials JSON (an array of credentials, camelCase).
        #[arg(long)]
        from: PathBuf,
        /// The store to write to.
        #[arg(long, default_value = agent_identity::DEFAULT_STORE)]
        store: String,
        /// REF=VARIABLE: the secret of credential REF is in environment variable VARIABLE.
        #[arg(long = "secret", value_name = "REF=VARIABLE")]
        secrets: Vec<String>,
        /// Check everything and say what would be written, without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Runs a command with credentials in its environment only, for tools that read a token
    /// from a variable.
    ///
    /// Each --env VAR=PROVIDER resolves the context for that provider; the secret is taken from
    /// a sidecar's POST /api/deliver (authenticated with the token in --token-env) or from a
    /// configuration read here, and only when the credential or its rule says
    /// `delivery = "reveal"`. Nothing runs unless every variable was delivered. Exits with the
    /// command's code; 125 when a credential was not delivered or the input is bad, 126 when
    /// the command could not be run, 127 when it was not found.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["sidecar", "config"])))]
    Exec {
        /// The sidecar's base URL (HTTPS, or plain HTTP on a loopback address).
        #[arg(long)]
        sidecar: Option<String>,
        /// Or: a configuration file (TOML), resolved in this process.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The environment variable holding the token this process presents to the sidecar
        /// (a token on the command line would show in the process list).
        #[arg(long, default_value = "AGENT_IDENTITY_TOKEN", value_name = "VARIABLE")]
        token_env: String,
        /// The request context as JSON (the body of POST /api/resolve), or @FILE; `provider`
        /// comes from each --env, `traceId` is made up when absent.
        #[arg(long)]
        context: String,
        /// VAR=PROVIDER: put the credential resolved for PROVIDER in the command's VAR.
        #[arg(long = "env", value_name = "VAR=PROVIDER", required = true)]
        bindings: Vec<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Serves the identity tools over MCP on standard input and output, acting for one user:
    /// who the session acts for, the user's connections, links to connect a provider, the
    /// rules and why one decides, the state of held calls. None returns a secret.
    ///
    /// Over HTTP, the sidecar serves the same tools at /mcp when `[mcp]` is configured.
    Mcp {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The user the tools act for.
        #[arg(long, env = "AGENT_IDENTITY_USER")]
        user: String,
    },
    /// Explains how one request context resolves: every rule with why it matched or not, and the
    /// outcome. Exits 0 when granted, 1 when denied, 2 on bad input.
    Resolve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The request context as JSON (the body of POST /api/resolve), or @FILE.
        #[arg(long)]
        context: String,
    },
}

#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command line reports on its streams"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                listen,
                log_format,
            } => serve(config, listen, log_format).await,
            Command::Check {
                config,
                deny_warnings,
            } => check(&config, deny_warnings),
            Command::Resolve { config, context } => resolve(&config, &context).await,
            Command::Mcp { config, user } => {
                let _logs = init_logging(LogFormat::Text, "warn");
                agent_identity_server::cli::mcp::run(&config, &user).await
            }
            Command::Exec {
                sidecar,
                config,
                token_env,
                context,
                bindings,
                command,
            } => {
                let _logs = init_logging(LogFormat::Text, "warn");
                // clap requires exactly one of the two.
                let source = match (sidecar, config) {
                    (Some(url), _) => exec::Source::Sidecar {
                        url,
                        token: std::env::var(&token_env).ok().map(Into::into),
                    },
                    (None, path) => exec::Source::Config(path.unwrap_or_default()),
                };
                exec::run(exec::Exec {
                    source,
                    context,
                    bindings,
                    command,
                })
                .await
            }
            Command::Import {
                config,
                from,
                store,
                secrets,
                dry_run,
            } => {
                let request = import::Request {
                    config,
                    from,
                    store,
                    secrets,
                    dry_run,
                };
                import::run(&request, &|name| std::env::var(name).ok()).await
            }
        }
    })
}

#[allow(clippy::print_stderr, reason = "start-up errors go to standard error")]
fn report(err: &LoadError) {
    eprintln!("error: the configuration is not valid:");
    for error in &err.errors {
        eprintln!("  - {error}");
    }
}

#[allow(clippy::print_stderr, reason = "start-up errors go to standard error")]
async fn serve(
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
    log_format: Option<LogFormat>,
) -> ExitCode {
    let metrics = Arc::new(Metrics::new());
    let observer =
        Some(Arc::new(MetricsObserver(metrics.clone()))
            as Arc<dyn agent_identity::ResolutionObserver>);
    let retained = match config::Retained::new() {
        Ok(retained) => Arc::new(retained),
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::FAILURE;
        }
    };
    let loaded = match &path {
        Some(path) => config::load_file_retaining(path, observer.clone(), &retained),
        None => config::load_env(&|name| std::env::var(name).ok(), observer.clone()),
    };
    let mut loaded: Loaded = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            let _logs = init_logging(log_format.unwrap_or_default(), "info");
            report(&err);
            return ExitCode::from(2);
        }
    };
    let _logs = init_logging(log_format.unwrap_or(loaded.server.log_format), "info");
    if let Some(listen) = listen {
        loaded.server.listen = listen;
        if let Err(err) = config::check_exposure_of(&loaded) {
            report(&err);
            return ExitCode::from(2);
        }
    }
    tracing::info!(
        source = %loaded.source,
        rules = loaded.router.rule_count(),
        version = env!("CARGO_PKG_VERSION"),
        "configuration loaded"
    );
    let watched = loaded.watched.clone();
    let server = match Server::bind(loaded, metrics).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    // A configuration from a file is reloaded on SIGHUP, on `POST /api/reload`, and when the
    // file changes; one from the environment is fixed for the process's life.
    let server = match path {
        Some(path) => server.reloading(
            ReloadSource {
                path,
                listen,
                observer,
                retained,
            },
            watched,
        ),
        None => server,
    };
    server.run(shutdown_signal()).await;
    ExitCode::SUCCESS
}

#[allow(clippy::print_stdout, reason = "check reports on standard output")]
fn check(path: &std::path::Path, deny_warnings: bool) -> ExitCode {
    let _logs = init_logging(LogFormat::Text, "warn");
    let loaded = match config::load_file(path, None) {
        Ok(loaded) => loaded,
        Err(err) => {
            for error in &err.errors {
                println!("error: {error}");
            }
            println!(
                "{} error(s): the configuration is not valid",
                err.errors.len()
            );
            return ExitCode::FAILURE;
        }
    };
    let lints = lint::lint(&loaded);
    for finding in &lints {
        println!("warning: {finding}");
    }
    let credentials: usize = loaded.memory_credentials.values().map(Vec::len).sum();
    println!(
        "configuration valid: {} rule(s), {} store(s), {credentials} credential(s) in memory stores, {} warning(s)",
        loaded.router.rule_count(),
        loaded.router.stores().count(),
        lints.len()
    );
    if deny_warnings && !lints.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "resolve reports on its streams"
)]
async fn resolve(path: &std::path::Path, context: &str) -> ExitCode {
    let _logs = init_logging(LogFormat::Text, "warn");
    let loaded = match config::load_file(path, None) {
        Ok(loaded) => loaded,
        Err(err) => {
            report(&err);
            return ExitCode::from(2);
        }
    };
    let value = match exec::read_context(context) {
        Ok(object) => serde_json::Value::Object(object),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let ctx = match RequestContext::from_json(&value) {
        Ok(ctx) => ctx,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let explanation = loaded.router.explain(&ctx).await;
    match serde_json::to_string_pretty(&explanation) {
        Ok(json) => println!("{json}"),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    }
    match explanation.outcome {
        ExplainedOutcome::Granted { .. } => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
