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
    /// The server's own folder, removed with it.
    dir: std::path::PathBuf,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

    /// Starts a replica of `master` (its data copied as it is written).
    pub async fn start_replica_of(master: &RedisServer) -> Self {
        Self::start_from(
            super::free_port(),
            None,
            false,
            &["--replicaof", "127.0.0.1", &master.port.to_string()],
            None,
        )
        .await
    }

    /// Starts a Redis Sentinel monitoring `master` as `name` (a quorum of one; the master is
    /// held down after half a second without answers), with its configuration in `dir`.
    pub async fn start_sentinel(master: &RedisServer, name: &str, dir: &std::path::Path) -> Self {
        Self::start_sentinel_with_password(master, name, dir, None).await
    }

    /// [`RedisServer::start_sentinel`], the sentinel itself asking its clients for `password`.
    pub async fn start_sentinel_with_password(
        master: &RedisServer,
        name: &str,
        dir: &std::path::Path,
        password: Option<&str>,
    ) -> Self {
        let port = super::free_port();
        let config = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &config,
            format!(
                "sentinel monitor {name} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {name} 500\n\
                 sentinel failover-timeout {name} 2000\n\
                 sentinel parallel-syncs {name} 1\n",
                master.port
            ),
        )
        .unwrap();
        Self::start_from(
            port,
            password.map(str::to_owned),
            false,
            &["--sentinel"],
            Some(&config),
        )
        .await
    }

    async fn start_with(port: u16, password: Option<String>, tls: bool) -> Self {
        Self::start_from(port, password, tls, &[], None).await
    }

    async fn start_from(
        port: u16,
        password: Option<String>,
        tls: bool,
        extra: &[&str],
        config: Option<&std::path::Path>,
    ) -> Self {
        let mut command = Command::new(redis_binary());
        // A configuration file comes first, as redis-server reads its arguments.
        if let Some(config) = config {
            command.arg(config);
        }
        command.args(extra);
        // Its files (a replica's copy of the master's data) go to a folder of its own, never
        // to the working directory.
        let dir = std::env::temp_dir().join(format!(
            "agent-identity-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        command.arg("--dir").arg(&dir);
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
            dir,
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
        let replies = if let Some(password) = &self.password {
            push(&["AUTH", password]);
            2
        } else {
            1
        };
        push(args);
        stream.write_all(&request).await?;
        // Read until the replies are whole (a sentinel knows no QUIT to end the stream with).
        let mut answer = Vec::new();
        let read = async {
            loop {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                answer.extend_from_slice(&chunk[..n]);
                let mut at = Some(0);
                for _ in 0..replies {
                    at = at.and_then(|at| reply_end(&answer, at));
                }
                if at.is_some() {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .map_err(|_| std::io::Error::other("no answer within 5 s"))??;
        // The answer to AUTH, if sent, comes first.
        let start = if replies == 2 {
            reply_end(&answer, 0).unwrap_or(0)
        } else {
            0
        };
        Ok(String::from_utf8_lossy(&answer[start..]).into_owned())
    }

    /// Stops the server (SIGKILL), as a crash would.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// Where the RESP reply that starts at `at` ends, when it is whole in `buf`.
fn reply_end(buf: &[u8], at: usize) -> Option<usize> {
    let line = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
    let number = || {
        std::str::from_utf8(&buf[at + 1..line])
            .ok()?
            .parse::<i64>()
            .ok()
    };
    match buf.get(at)? {
        b'+' | b'-' | b':' => Some(line + 2),
        b'$' => match number()? {
            n if n < 0 => Some(line + 2),
            n => {
                let end = line + 2 + usize::try_from(n).ok()? + 2;
                (end <= buf.len()).then_some(end)
            }
        },
        b'*' => {
            let mut position = line + 2;
            for _ in 0..number()?.max(0) {
                position = reply_end(buf, position)?;
            }
            Some(position)
        }
        _ => None,
    }
}
