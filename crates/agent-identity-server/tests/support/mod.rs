//! What the tests that run the `agent-identity` binary share: the sidecar as a process, a
//! verb run to completion, configurations written to a temporary directory.
#![allow(
    dead_code,
    reason = "each test binary uses a part of the support it includes"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// The binary under test.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_agent-identity");

/// The example configuration of the README.
pub(crate) fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sidecar/agent-identity.toml")
}

/// A sidecar process, stopped when dropped.
pub(crate) struct Sidecar {
    pub(crate) child: tokio::process::Child,
    pub(crate) address: String,
    /// Every line it logged after it started listening.
    pub(crate) log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Sidecar {
    pub(crate) async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = tokio::process::Command::new(BINARY);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((_, rest)) = line.split_once("listening address=") {
                    return rest.trim().to_owned();
                }
            }
            panic!("the sidecar exited before listening");
        })
        .await
        .expect("the sidecar did not start listening in 20 s");
        // Keep draining the log so that the process never blocks on a full pipe.
        let log = std::sync::Arc::<std::sync::Mutex<String>>::default();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Self {
            child,
            address,
            log,
        }
    }

    /// `serve --config <config>` on an ephemeral loopback port, with `env` set.
    pub(crate) async fn serve(config: &Path, env: &[(&str, &str)]) -> Self {
        let config = config.to_str().unwrap();
        Self::start(
            &["serve", "--config", config, "--listen", "127.0.0.1:0"],
            env,
        )
        .await
    }

    pub(crate) fn port(&self) -> &str {
        self.address.rsplit(':').next().unwrap()
    }

    /// Sends SIGTERM, as an orchestrator stopping the sidecar does.
    pub(crate) fn signal_terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_terminate();
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap()
    }
}

/// Runs `script` (under `tests/python/`) with the Python of `AGENT_IDENTITY_PYTHON` and `args`:
/// whether it succeeded, its standard output and error.
pub(crate) async fn python(script: &str, args: &[&str]) -> (bool, String, String) {
    let python = std::env::var("AGENT_IDENTITY_PYTHON").expect(
        "AGENT_IDENTITY_PYTHON must name the Python that scripts/test.sh prepares (the reference's \
         clients, openai, PyGithub)",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let output = tokio::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the binary with `args` to completion: its exit code, standard output and error.
pub(crate) fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BINARY).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Writes `config` as `agent-identity.toml` in a directory of its own; its path.
pub(crate) fn write_config(name: &str, config: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agent-identity-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agent-identity.toml");
    std::fs::write(&path, config).unwrap();
    path
}
