//! A PostgreSQL server of the test's own (Debian's `postgresql` package), for Vault's dynamic
//! database secrets.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser Vault connects as.
pub const POSTGRES_ADMIN: &str = "postgres";
/// Its password (a test server on loopback only).
pub const POSTGRES_ADMIN_PASSWORD: &str = "test-only-admin-password";

/// A PostgreSQL server on `127.0.0.1` and a port of its own, with a data folder of its own
/// (removed when dropped, after an immediate stop). As root, it runs as the `postgres` user,
/// which the package makes: PostgreSQL refuses to run as root.
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_root: bool,
}

/// The folder of the newest PostgreSQL's programs (`/usr/lib/postgresql/<version>/bin`), or
/// `AGENT_IDENTITY_PG_BIN`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("AGENT_IDENTITY_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (/usr/lib/postgresql/*/bin): run scripts/test.sh, which installs it")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

impl PostgresServer {
    /// Makes a cluster (`initdb`, password authentication) and starts it, waiting until it
    /// accepts connections.
    pub fn start() -> Self {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!(
            "agent-identity-postgres-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let server = Self {
            bin: bin_dir(),
            dir,
            port,
            as_root: is_root(),
        };
        let password_file = server.dir.join("password");
        std::fs::write(&password_file, POSTGRES_ADMIN_PASSWORD).unwrap();
        if server.as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the PostgreSQL folder failed");
        }
        let data = server.dir.join("data");
        server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "--auth=scram-sha-256".as_ref(),
                format!("--username={POSTGRES_ADMIN}").as_ref(),
                format!("--pwfile={}", password_file.display()).as_ref(),
            ],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            server.dir.display()
        );
        server.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                server.dir.join("log").as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        );
        server
    }

    /// Runs one of PostgreSQL's programs, as `postgres` when this process is root.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) {
        let path = self.bin.join(program);
        let mut command = if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL Vault's `postgresql-database-plugin` takes, with its `{{username}}`
    /// and `{{password}}` templates.
    pub fn vault_connection_url(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Configures `bao`'s `database` secrets engine (mounted at `database`) to mint logins on
    /// this server: a connection `pg` as the superuser, and a role `reader` whose logins may
    /// read everything, for an hour by default and two at most.
    pub async fn serve_logins_through(&self, bao: &crate::OpenBao) {
        use serde_json::json;
        bao.ok(
            "POST",
            "sys/mounts/database",
            Some(json!({"type": "database"})),
        )
        .await;
        bao.ok(
            "POST",
            "database/config/pg",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": self.vault_connection_url(),
                "username": POSTGRES_ADMIN,
                "password": POSTGRES_ADMIN_PASSWORD,
                "allowed_roles": ["reader"],
                "verify_connection": true,
            })),
        )
        .await;
        bao.ok(
            "POST",
            "database/roles/reader",
            Some(json!({
                "db_name": "pg",
                "creation_statements": [
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                    "GRANT pg_read_all_data TO \"{{name}}\";"
                ],
                "default_ttl": "1h",
                "max_ttl": "2h",
            })),
        )
        .await;
    }

    /// Logs in as `user` with `password` (psql over TCP) and runs `SELECT 1`: `Ok` when the
    /// login works, PostgreSQL's message otherwise.
    pub fn log_in(&self, user: &str, password: &str) -> Result<(), String> {
        let output = Command::new(self.bin.join("psql"))
            .arg(format!(
                "host=127.0.0.1 port={} user={user} dbname=postgres connect_timeout=5",
                self.port
            ))
            .args(["-X", "-q", "-t", "-c", "SELECT 1"])
            .env("PGPASSWORD", password)
            .output()
            .unwrap();
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let path = self.bin.join("pg_ctl");
        let mut command = if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
