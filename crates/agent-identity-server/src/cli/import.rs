//! `agent-identity import`: writes the reference's credentials JSON into a store that persists
//! (Vault, AWS Secrets Manager).
//!
//! ```no_run
//! # async fn example() {
//! use agent_identity_server::cli::import::{Request, run};
//!
//! let request = Request {
//!     config: "agent-identity.toml".into(),
//!     from: "credentials.json".into(),
//!     store: "default".into(),
//!     secrets: vec!["openai-prod=OPENAI_API_KEY".into()],
//!     dry_run: false,
//! };
//! let exit = run(&request, &|name| std::env::var(name).ok()).await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use agent_identity::{
    Credential, CredentialRef, CredentialWriter, Error, RequestContext, ResourceKind, Secret,
    parse_credentials_json,
};

use crate::config;

/// What to import, from where, into which store.
#[derive(Debug, Clone)]
pub struct Request {
    /// The sidecar's configuration file.
    pub config: PathBuf,
    /// The credentials JSON.
    pub from: PathBuf,
    /// The name of the store to write to.
    pub store: String,
    /// `REF=VARIABLE` pairs: where each secret is.
    pub secrets: Vec<String>,
    /// Check and report without writing.
    pub dry_run: bool,
}

/// Where a written credential's secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOrigin {
    /// From the environment variable named for it.
    Given,
    /// The store's existing secret for the ref, kept.
    Kept,
    /// None: the credential is written without secret material.
    Absent,
}

/// What an import did, credential by credential.
#[derive(Debug, Default)]
pub struct Report {
    /// Written (or, in a dry run, checked), with the origin of each secret.
    pub written: Vec<(CredentialRef, SecretOrigin)>,
    /// Not written, with why.
    pub failed: Vec<(CredentialRef, Error)>,
}

/// Writes `credentials` into `store`. A credential without a secret keeps the one the store holds
/// for its ref, so that re-importing metadata never wipes a secret. Each credential is written on
/// its own: one failure does not stop the others, and the report lists it.
///
/// ```
/// # use agent_identity_server::cli::import::{SecretOrigin, import};
/// # use agent_identity::{Credential, CredentialKind, MemoryCredentialStore, Secret};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryCredentialStore::new();
/// let c = Credential::new("c1", CredentialKind::Fixed, "openai")?.with_secret(Secret::new("sk"));
/// let report = import(&store, vec![c], false).await;
/// assert_eq!(report.written[0].1, SecretOrigin::Given);
/// # Ok::<(), agent_identity::Error>(()) }).unwrap();
/// ```
pub async fn import(
    store: &dyn CredentialWriter,
    credentials: Vec<Credential>,
    dry_run: bool,
) -> Report {
    let mut report = Report::default();
    let context = import_context();
    for mut credential in credentials {
        let reference = credential.reference.clone();
        let origin = if credential.secret.is_some() {
            SecretOrigin::Given
        } else {
            match store.find_by_ref(&reference, &context).await {
                Ok(existing) => match existing.and_then(|c| c.secret) {
                    Some(secret) => {
                        credential.secret = Some(secret);
                        SecretOrigin::Kept
                    }
                    None => SecretOrigin::Absent,
                },
                Err(err) => {
                    report.failed.push((reference, err));
                    continue;
                }
            }
        };
        if !dry_run && let Err(err) = store.put(credential).await {
            report.failed.push((reference, err));
            continue;
        }
        report.written.push((reference, origin));
    }
    report
}

/// The context of the import's own reads: stores that hold fixed secrets ignore it.
fn import_context() -> RequestContext {
    RequestContext::builder()
        .user_id("agent-identity-import")
        .resource_id("import")
        .resource_kind(ResourceKind::Shared)
        .provider("import")
        .model("import")
        .action("import")
        .trace_id("agent-identity-import")
        .build()
        .unwrap_or_else(|_| unreachable!("the import context's fields are all valid"))
}

/// Reads `request`'s files, checks everything, then imports; prints what happened. Exit codes:
/// 0 every credential written, 1 some failed, 2 bad input (nothing written).
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command line reports on its streams"
)]
pub async fn run(request: &Request, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    let _logs = crate::init_logging(crate::app::settings::LogFormat::Text, "warn");
    let prepared = match prepare(request, env) {
        Ok(prepared) => prepared,
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            eprintln!("nothing was written");
            return ExitCode::from(2);
        }
    };
    let (store, credentials) = prepared;
    let report = import(store.as_ref(), credentials, request.dry_run).await;
    let verb = if request.dry_run {
        "would write"
    } else {
        "wrote"
    };
    for (reference, origin) in &report.written {
        let secret = match origin {
            SecretOrigin::Given => "secret from the environment",
            SecretOrigin::Kept => "stored secret kept",
            SecretOrigin::Absent => "no secret",
        };
        println!("{verb} `{reference}` ({secret})");
    }
    for (reference, err) in &report.failed {
        println!("failed `{reference}`: {err}");
    }
    let done = if request.dry_run {
        "would be written"
    } else {
        "written"
    };
    println!(
        "{} credential(s) {done} to store `{}`, {} failed",
        report.written.len(),
        request.store,
        report.failed.len()
    );
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

type Prepared = (std::sync::Arc<dyn CredentialWriter>, Vec<Credential>);

/// Everything checked before the first write: the store, the file, each secret.
fn prepare(
    request: &Request,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Prepared, Vec<String>> {
    let loaded = config::load_file(&request.config, None).map_err(|err| {
        err.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    })?;
    let Some(store) = loaded.writers.get(&request.store).cloned() else {
        let writable: Vec<&str> = loaded.writers.keys().map(String::as_str).collect();
        return Err(vec![format!(
            "store `{}` is not a store that persists writes; configured: {}",
            request.store,
            if writable.is_empty() {
                "none (import writes to `vault` and `aws` stores)".to_owned()
            } else {
                writable.join(", ")
            }
        )]);
    };
    let location = request.from.display().to_string();
    let json = std::fs::read_to_string(&request.from)
        .map_err(|err| vec![format!("{location}: cannot be read: {err}")])?;
    let mut credentials =
        parse_credentials_json(&json).map_err(|err| vec![format!("{location}: {err}")])?;
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for credential in &credentials {
        if let Some(first) = seen.insert(credential.reference.clone(), credential.id.clone()) {
            problems.push(format!(
                "{location}: credentials `{first}` and `{}` have the same ref `{}`",
                credential.id, credential.reference
            ));
        }
    }
    for pair in &request.secrets {
        let Some((reference, variable)) = pair.split_once('=') else {
            problems.push(format!("--secret `{pair}`: expected REF=VARIABLE"));
            continue;
        };
        let Some(credential) = credentials
            .iter_mut()
            .find(|c| c.reference.as_str() == reference)
        else {
            problems.push(format!(
                "--secret `{pair}`: no credential in {location} has ref `{reference}`"
            ));
            continue;
        };
        match env(variable) {
            Some(value) if !value.is_empty() => credential.secret = Some(Secret::new(value)),
            _ => problems.push(format!(
                "--secret `{pair}`: environment variable `{variable}` is not set"
            )),
        }
    }
    if problems.is_empty() {
        Ok((store, credentials))
    } else {
        Err(problems)
    }
}
