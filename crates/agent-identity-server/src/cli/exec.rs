//! `agent-identity exec`: runs one command with credentials bound to environment variables, for
//! tools that read a token from their environment.
//!
//! Each `--env VAR=PROVIDER` resolves the request context with that provider, then takes the
//! secret either from a sidecar's `POST /api/deliver` (which hands it out only when the
//! credential or its rule says `delivery = "reveal"` and the caller holds `receive-secrets`) or
//! from a configuration file read here (where the credential or rule must still say `reveal`).
//! The secrets are placed in the child's environment only: never in this process's environment,
//! its output or its errors. Nothing runs unless every variable was delivered.
//!
//! Exit codes follow `env` and `timeout`: the child's own code (128 + the signal when a signal
//! ended it), 125 when a credential could not be delivered or the input is bad, 126 when the
//! command could not be run, 127 when it was not found.
//!
//! ```no_run
//! # async fn example() {
//! use agent_identity_server::cli::exec::{Exec, Source, run};
//!
//! let exec = Exec {
//!     source: Source::Sidecar {
//!         url: "http://127.0.0.1:3001".into(),
//!         token: std::env::var("AGENT_IDENTITY_TOKEN").ok().map(Into::into),
//!     },
//!     context: r#"{"userId":"alice","resourceId":"repo","resourceKind":"personal",
//!                  "model":"gpt-4o","action":"read"}"#.into(),
//!     bindings: vec!["GITHUB_TOKEN=github".into()],
//!     command: vec!["gh".into(), "repo".into(), "list".into()],
//! };
//! let exit = run(exec).await;
//! # }
//! ```

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent_identity::identity_http::{HttpClient, OutboundPolicy};
use agent_identity::{Delivery, RequestContext, Router, Secret};
use serde_json::Value;
use zeroize::Zeroize;

use crate::config;

/// Exit code when a credential was not delivered or the input is bad (as `env` and `timeout`).
pub const EXIT_NOT_DELIVERED: u8 = 125;
/// Exit code when the command exists but could not be run.
pub const EXIT_CANNOT_RUN: u8 = 126;
/// Exit code when the command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Where the credentials come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A running sidecar's `POST /api/deliver`.
    Sidecar {
        /// The sidecar's base URL: HTTPS, or plain HTTP on a loopback address.
        url: String,
        /// The caller's bearer token (an API key or a JWT) for the sidecar.
        token: Option<Secret>,
    },
    /// A configuration file, resolved in this process.
    Config(PathBuf),
}

/// One `exec` invocation.
#[derive(Debug, Clone)]
pub struct Exec {
    /// Where the credentials come from.
    pub source: Source,
    /// The request context as JSON (the body of `POST /api/resolve`), or `@FILE`. `provider`
    /// comes from each binding; `traceId` is made up when absent.
    pub context: String,
    /// `VAR=PROVIDER` bindings.
    pub bindings: Vec<String>,
    /// The command and its arguments.
    pub command: Vec<OsString>,
}

/// Why nothing was run. The messages name the variable and the reason, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The command line or the context is not valid.
    #[error("{0}")]
    BadInput(String),
    /// A variable's credential was not delivered.
    #[error("`{variable}`: {reason}")]
    NotDelivered {
        /// The variable.
        variable: String,
        /// Why, as the sidecar or the router said it.
        reason: String,
    },
}

/// A `VAR=PROVIDER` binding, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The environment variable.
    pub variable: String,
    /// The provider the credential is resolved for.
    pub provider: String,
}

/// Reads `VAR=PROVIDER`: the variable is a portable name (`[A-Za-z_][A-Za-z0-9_]*`), the
/// provider is not empty.
///
/// ```
/// use agent_identity_server::cli::exec::parse_binding;
/// let binding = parse_binding("GITHUB_TOKEN=github").unwrap();
/// assert_eq!((binding.variable.as_str(), binding.provider.as_str()), ("GITHUB_TOKEN", "github"));
/// assert!(parse_binding("GITHUB_TOKEN").is_err());
/// assert!(parse_binding("1X=github").is_err());
/// assert!(parse_binding("X=").is_err());
/// ```
pub fn parse_binding(text: &str) -> Result<Binding, ExecError> {
    let bad = |problem: &str| ExecError::BadInput(format!("--env `{text}`: {problem}"));
    let (variable, provider) = text
        .split_once('=')
        .ok_or_else(|| bad("expected VAR=PROVIDER"))?;
    let mut chars = variable.chars();
    let portable = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !portable {
        return Err(bad(
            "the variable must be letters, digits and `_`, not starting with a digit",
        ));
    }
    if provider.trim().is_empty() {
        return Err(bad("the provider is empty"));
    }
    Ok(Binding {
        variable: variable.to_owned(),
        provider: provider.to_owned(),
    })
}

/// The context JSON of `text` (inline, or `@FILE`) as an object.
pub fn read_context(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    let text = match text.strip_prefix('@') {
        Some(file) => {
            std::fs::read_to_string(file).map_err(|err| format!("cannot read {file}: {err}"))?
        }
        None => text.to_owned(),
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("the context is not a JSON object".into()),
        Err(err) => Err(format!("the context is not valid JSON: {err}")),
    }
}

/// Delivers every binding's credential, then runs the command with them in its environment
/// and returns its exit code; runs nothing when any delivery fails.
#[allow(
    clippy::print_stderr,
    reason = "exec reports its own failures on standard error"
)]
pub async fn run(exec: Exec) -> ExitCode {
    let variables = match deliver_all(&exec).await {
        Ok(variables) => variables,
        Err(err) => {
            eprintln!("error: {err}; nothing was run");
            return ExitCode::from(EXIT_NOT_DELIVERED);
        }
    };
    let Some((program, args)) = exec.command.split_first() else {
        eprintln!("error: no command given after `--`");
        return ExitCode::from(EXIT_NOT_DELIVERED);
    };
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    for (variable, secret) in &variables {
        command.env(variable, secret.expose_secret());
    }
    // The command's output is its own: inherited, not read here.
    let status = match command.status().await {
        Ok(status) => status,
        Err(err) => {
            let program = program.to_string_lossy();
            return if err.kind() == std::io::ErrorKind::NotFound {
                eprintln!("error: `{program}` was not found");
                ExitCode::from(EXIT_NOT_FOUND)
            } else {
                eprintln!("error: `{program}` could not be run: {err}");
                ExitCode::from(EXIT_CANNOT_RUN)
            };
        }
    };
    ExitCode::from(exit_code(status))
}

/// The child's exit code; 128 + the signal when a signal ended it (as a shell reports it).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + (signal & 0x7f)).unwrap_or(1);
        }
    }
    1
}

/// Every binding's secret, or the first reason one was not delivered.
async fn deliver_all(exec: &Exec) -> Result<Vec<(String, Secret)>, ExecError> {
    let bindings = exec
        .bindings
        .iter()
        .map(|text| parse_binding(text))
        .collect::<Result<Vec<_>, _>>()?;
    if bindings.is_empty() {
        return Err(ExecError::BadInput(
            "give at least one --env VAR=PROVIDER".into(),
        ));
    }
    for (index, binding) in bindings.iter().enumerate() {
        if bindings[..index]
            .iter()
            .any(|earlier| earlier.variable == binding.variable)
        {
            return Err(ExecError::BadInput(format!(
                "--env `{}` is given twice",
                binding.variable
            )));
        }
    }
    let mut context = read_context(&exec.context).map_err(ExecError::BadInput)?;
    context
        .entry("traceId")
        .or_insert_with(|| Value::String(format!("exec-{}", std::process::id())));
    let deliverer = Deliverer::new(&exec.source)?;
    let mut variables = Vec::with_capacity(bindings.len());
    for binding in bindings {
        let mut context = context.clone();
        context.insert("provider".into(), Value::String(binding.provider.clone()));
        let secret = deliverer
            .deliver(Value::Object(context))
            .await
            .map_err(|reason| ExecError::NotDelivered {
                variable: binding.variable.clone(),
                reason,
            })?;
        variables.push((binding.variable, secret));
    }
    Ok(variables)
}

/// Takes secrets from a sidecar or from a router built here.
enum Deliverer {
    Sidecar {
        url: url::Url,
        token: Option<Secret>,
        http: Box<HttpClient>,
    },
    Local(Box<Router>),
}

impl Deliverer {
    fn new(source: &Source) -> Result<Self, ExecError> {
        match source {
            Source::Sidecar { url, token } => {
                // The secret comes back in the answer: plain HTTP only to this machine, and no
                // address refused (a sidecar is usually on the local network).
                let policy = OutboundPolicy::default()
                    .allow_http_loopback(true)
                    .allow_private(true)
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(30))
                    .max_body(64 * 1024);
                let base = policy.check_url(url, "--sidecar").map_err(|err| {
                    ExecError::BadInput(format!("--sidecar `{url}` is not usable: {err}"))
                })?;
                let url = base.join("api/deliver").map_err(|_| {
                    ExecError::BadInput(format!("--sidecar `{url}` is not a base URL"))
                })?;
                let http = HttpClient::new(policy)
                    .map_err(|err| ExecError::BadInput(format!("cannot make the client: {err}")))?;
                Ok(Self::Sidecar {
                    url,
                    token: token.clone(),
                    http: Box::new(http),
                })
            }
            Source::Config(path) => match config::load_file(path, None) {
                Ok(loaded) => Ok(Self::Local(Box::new(loaded.router))),
                Err(err) => Err(ExecError::BadInput(format!(
                    "the configuration is not valid: {}",
                    err.errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ))),
            },
        }
    }

    async fn deliver(&self, context: Value) -> Result<Secret, String> {
        match self {
            Self::Sidecar { url, token, http } => {
                let mut request = http
                    .request(reqwest::Method::POST, url)
                    .header("accept", "application/json")
                    .json(&context);
                if let Some(token) = token {
                    request = request.bearer_auth(token.expose_secret());
                }
                let mut answer = http
                    .send(request, "the sidecar")
                    .await
                    .map_err(|err| err.to_string())?;
                let result = secret_of(answer.status, &answer.body);
                answer.body.zeroize();
                result
            }
            Self::Local(router) => {
                let context = RequestContext::from_json(&context).map_err(|err| err.to_string())?;
                let resolution = router
                    .resolve(&context)
                    .await
                    .map_err(|denial| format!("denied ({}): {denial}", denial.reason.code()))?;
                if resolution.delivery != Delivery::Reveal {
                    return Err(
                        "the credential is proxy-only: neither it nor its rule says `delivery = \"reveal\"`"
                            .into(),
                    );
                }
                resolution
                    .secret()
                    .cloned()
                    .ok_or_else(|| "the credential chosen holds no secret".into())
            }
        }
    }
}

/// The secret of a sidecar's answer, or what it said instead (its `code` and `error`, never the
/// body as a whole).
fn secret_of(status: u16, body: &[u8]) -> Result<Secret, String> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|_| format!("the sidecar answered {status} without JSON"))?;
    if status == 200 {
        return json
            .get("secret")
            .and_then(Value::as_str)
            .map(Secret::new)
            .ok_or_else(|| "the sidecar's answer holds no secret".into());
    }
    let field = |name: &str| json.get(name).and_then(Value::as_str).unwrap_or("unknown");
    Err(format!(
        "the sidecar refused ({status} {}): {}",
        field("code"),
        field("error")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_code_and_a_delivery_gives_the_secret() {
        let refused = secret_of(
            403,
            br#"{"error":"the credential is proxy-only","code":"credential_not_deliverable"}"#,
        )
        .unwrap_err();
        assert_eq!(
            refused,
            "the sidecar refused (403 credential_not_deliverable): the credential is proxy-only"
        );
        let secret = secret_of(200, br#"{"ok":true,"secret":"ghp-canary"}"#).unwrap();
        assert_eq!(secret.expose_secret(), "ghp-canary");
        assert!(secret_of(200, br#"{"ok":true}"#).is_err());
        assert!(
            !secret_of(502, b"<html>ghp-canary</html>")
                .unwrap_err()
                .contains("canary")
        );
    }

    #[test]
    fn a_context_must_be_an_object() {
        assert!(read_context("[]").is_err());
        assert!(read_context("{").is_err());
        assert_eq!(read_context(r#"{"userId":"a"}"#).unwrap()["userId"], "a");
    }
}
