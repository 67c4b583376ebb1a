//! [`RedisServer`]: a Redis server of this test's own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A `redis-server` on 127.0.0.1 and a port of its own, without persistence, stopped when
/// dropped; from `AGENT_IDENTITY_REDIS`, else `redis-server` on the `PATH` (`scripts/test.sh`
/// installs Debian's).
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    /// The TLS port, when the server has one (beside the plain one, which tests use to look).
    tls_port: Option<u16>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn redis_binary() -> PathBuf {
    std::env::var_os("AGENT_IDENTITY_REDIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

impl RedisServer {
    /// Starts a server whose default user needs no password.
    pub async fn start() -> Self {
        Self::start_with(super::free_port(), None, false).await
    }

    /// Starts a server that also speaks TLS, with the project's test certificate for
    /// 127.0.0.1 (`fixtures/tls`): [`RedisServer::tls_url`].
    pub async fn start_tls() -> Self {
        Self::start_with(super::free_port(), None, true).await
    }

    /// `rediss://127.0.0.1:<tls port>`, for a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}",
            self.tls_port.expect("a server started with start_tls")
        )
    }

    /// Starts a server on `port` (where a stopped one was, to see clients reconnect).
    pub async fn start_on(port: u16) -> Self {
        Self::start_with(port, None, false).await
    }

    /// Starts a server whose default user needs `password`.
    pub async fn start_with_password(password: &str) -> Self {
        Self::start_with(super::free_port(), Some(password.to_owned()), false).await
    }

    async fn start_with(port: u16, password: Option<String>, tls: bool) -> Self {
        let mut command = Command::new(redis_binary());
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]);
        if let Some(password) = &password {
            command.args(["--requirepass", password]);
        }
        let tls_port = tls.then(super::free_port);
        if let Some(tls_port) = tls_port {
            let fixture = |name: &str| super::tls_fixture(name).to_string_lossy().into_owned();
            command
                .args(["--tls-port", &tls_port.to_string()])
                .args(["--tls-cert-file", &fixture("server.pem")])
                .args(["--tls-key-file", &fixture("server-key.pem")])
                .args(["--tls-ca-cert-file", &fixture("ca.pem")])
                .args(["--tls-auth-clients", "no"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "redis-server ({}) does not start ({err}): run scripts/test.sh, which installs it",
                    redis_binary().display()
                )
            });
        let server = Self {
            child: Some(child),
            port,
            password,
            tls_port,
        };
        for _ in 0..400 {
            if server
                .command(&["PING"])
                .await
                .is_ok_and(|answer| answer.starts_with("+PONG"))
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not answer PING on port {port} within 10 s");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends one command (as the default user, with the server's password if it has one) and
    /// gives the raw reply: what a test reads the server's own state with.
    pub async fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut request = Vec::new();
        let mut push = |args: &[&str]| {
            request.extend(format!("*{}\r\n", args.len()).into_bytes());
            for arg in args {
                request.extend(format!("${}\r\n{arg}\r\n", arg.len()).into_bytes());
            }
        };
        if let Some(password) = &self.password {
            push(&["AUTH", password]);
        }
        push(args);
        push(&["QUIT"]);
        stream.write_all(&request).await?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .map_err(|_| std::io::Error::other("no answer within 5 s"))??;
        // The answer to AUTH, if sent, comes first; the answer to QUIT last.
        let answer = if self.password.is_some() {
            answer
                .split_once("\r\n")
                .map(|(_, rest)| rest)
                .unwrap_or_default()
                .to_owned()
        } else {
            answer
        };
        Ok(answer.strip_suffix("+OK\r\n").unwrap_or(&answer).to_owned())
    }

    /// Stops the server (SIGKILL), as a crash would.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}
