//! [`Redis`], a connection to one server, and [`RedisState`], a namespace of shared state in it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use identity_core::Error;
use identity_state::{SharedState, check_document, check_key};
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisError, Script, ScriptInvocation};
use serde_json::Value;

use crate::BACKEND;
use crate::connection::{Connections, Credentials, to_error};

/// Writes a document if its version is still the one expected (`""`: absent). Versions come
/// from one counter per namespace, so none is given twice, even to a key deleted and written
/// again.
const WRITE_IF: &str = r"
local current = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == '' then
  if current then return false end
elseif current ~= ARGV[1] then
  return false
end
local version = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', version, 'd', ARGV[2])
return version
";

/// Takes a lease free or held by the same holder (`SET ... PX` starts its time again).
const TAKE_LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Gives a lease back only if the holder still has it.
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A Redis server, reached through one multiplexed connection that reconnects by itself (at
/// a fixed address, or at the master its sentinels report); made by
/// [`RedisConfig::connect`](crate::RedisConfig::connect), [`Redis::open`] or
/// [`Redis::sentinel`]. Cheap to clone. `Debug` shows the address, never the password.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    connections: Connections,
    prefix: String,
    timeout: Duration,
    scripts: Scripts,
}

struct Scripts {
    write_if: Script,
    take_lease: Script,
    release_lease: Script,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("address", &self.inner.connections.describe())
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// The Redis Sentinel instances to ask for the master, and what they ask of their clients.
/// `Debug` shows no password.
pub struct Sentinels<'a> {
    /// The sentinels' URLs (`redis://host:26379`, or `rediss://` for TLS).
    pub urls: &'a [String],
    /// The name the sentinels monitor the master under.
    pub master_name: &'a str,
    /// The ACL user the sentinels ask for, if not the default one.
    pub username: Option<&'a str>,
    /// The sentinels' own password, when they ask for one.
    pub password: Option<String>,
}

impl fmt::Debug for Sentinels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sentinels")
            .field("urls", &self.urls)
            .field("master_name", &self.master_name)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Redis {
    /// The server at `url` (`redis://` or `rediss://`), as `username` with `password` when
    /// given, trusting `ca_pem` (PEM) for TLS when given; keys start with `prefix`. Commands
    /// time out after `timeout`. An error says what is wrong with the URL.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let redis = identity_redis::Redis::open("redis://127.0.0.1:6379", None, None, None, "agent-identity", Duration::from_secs(2))?;
    /// assert!(format!("{redis:?}").contains("127.0.0.1:6379"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn open(
        url: &str,
        username: Option<&str>,
        password: Option<String>,
        ca_pem: Option<Vec<u8>>,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let credentials = Credentials {
            username,
            password,
            ca_pem,
        };
        Ok(Self::over(
            Connections::direct(url, credentials, timeout)?,
            prefix,
            timeout,
        ))
    }

    /// The master that the Redis Sentinel instances `sentinels` name report (`redis://host:26379`;
    /// `rediss://` for TLS to the sentinels and the master), as `username` with `password`
    /// when given, trusting `ca_pem` (PEM) for TLS when given. After a failover, the sentinels
    /// are asked again: commands go to the new master.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let urls = ["redis://10.0.0.1:26379".to_owned(), "redis://10.0.0.2:26379".to_owned()];
    /// let sentinels = identity_redis::Sentinels { urls: &urls, master_name: "main", username: None, password: None };
    /// let redis = identity_redis::Redis::sentinel(sentinels, None, None, None, "agent-identity", Duration::from_secs(2))?;
    /// assert!(format!("{redis:?}").contains("the master `main`"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn sentinel(
        sentinels: Sentinels<'_>,
        username: Option<&str>,
        password: Option<String>,
        ca_pem: Option<Vec<u8>>,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let credentials = Credentials {
            username,
            password,
            ca_pem,
        };
        Ok(Self::over(
            Connections::sentinel(sentinels, credentials, timeout)?,
            prefix,
            timeout,
        ))
    }

    fn over(connections: Connections, prefix: &str, timeout: Duration) -> Self {
        // rustls picks its crypto from the process's default provider: ring, as everywhere in
        // the project (a no-op when one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            inner: Arc::new(Inner {
                connections,
                prefix: prefix.to_owned(),
                timeout,
                scripts: Scripts {
                    write_if: Script::new(WRITE_IF),
                    take_lease: Script::new(TAKE_LEASE),
                    release_lease: Script::new(RELEASE_LEASE),
                },
            }),
        }
    }

    /// The shared state of `namespace` (`connections`, `clients`, `approvals`, ...): its keys
    /// lie apart from every other namespace's.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let redis = identity_redis::Redis::open("redis://127.0.0.1:6379", None, None, None, "agent-identity", Duration::from_secs(2))?;
    /// let connections = redis.state("connections").map_err(|e| e.to_string())?;
    /// assert!(redis.state("a b").is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn state(&self, namespace: &str) -> Result<RedisState, Error> {
        check_key(namespace)?;
        // One hash tag per namespace: a namespace's keys share a cluster slot, as its scripts
        // (which touch the document and the version counter together) need.
        let base = format!("{}:{{{namespace}}}", self.inner.prefix);
        Ok(RedisState {
            redis: self.clone(),
            versions: format!("{base}:versions"),
            documents: format!("{base}:d:"),
            leases: format!("{base}:l:"),
        })
    }

    /// Checks that the server answers `PING` with these settings (for readiness probes and
    /// start-up checks).
    ///
    /// ```no_run
    /// # async fn example(redis: identity_redis::Redis) -> Result<(), identity_core::Error> {
    /// redis.ping().await?;
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<(), Error> {
        let mut connection = self.connection().await?;
        self.timed(
            "PING",
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await
        .map(|_| ())
    }

    /// What every key starts with.
    #[cfg(feature = "budget")]
    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Runs a script invocation, in time.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        what: &str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        let mut connection = self.connection().await?;
        self.timed(what, invocation.invoke_async(&mut connection))
            .await
    }

    /// Runs a command, in time.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        what: &str,
        command: &redis::Cmd,
    ) -> Result<T, Error> {
        let mut connection = self.connection().await?;
        self.timed(what, command.query_async(&mut connection)).await
    }

    /// Removes `member` from the sorted set at `key` (a call leaving its budget).
    #[cfg(feature = "budget")]
    pub(crate) async fn leave(&self, key: &str, member: &str) -> Result<(), Error> {
        self.query::<u64>("budget leave", redis::cmd("ZREM").arg(key).arg(member))
            .await
            .map(|_| ())
    }

    async fn connection(&self) -> Result<ConnectionManager, Error> {
        self.inner.connections.get().await
    }

    async fn timed<T>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.inner.timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                self.inner.connections.failed(Some(&err));
                Err(to_error(&err, what))
            }
            Err(_) => {
                self.inner.connections.failed(None);
                Err(Error::unavailable(
                    BACKEND,
                    format!("{what} took over {:?}", self.inner.timeout),
                ))
            }
        }
    }
}

/// A random name (a call's slot): 96 bits, hex.
#[cfg(feature = "budget")]
pub(crate) fn random_id() -> String {
    let mut random = [0u8; 12];
    // Without randomness, the time and the process still tell names apart.
    if getrandom::fill(&mut random).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = nanos ^ u128::from(std::process::id());
        random.copy_from_slice(&seed.to_le_bytes()[..12]);
    }
    hex::encode(random)
}

/// One namespace of shared state in Redis: documents as hashes (`v`: version, `d`: the JSON),
/// versions from the namespace's counter, leases as keys with a time to live. Writes and
/// leases are Lua scripts, atomic on the server. Made by [`Redis::state`].
#[derive(Clone)]
pub struct RedisState {
    redis: Redis,
    versions: String,
    documents: String,
    leases: String,
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState")
            .field("redis", &self.redis)
            .field("documents", &self.documents)
            .finish_non_exhaustive()
    }
}

fn malformed(key: &str, problem: &str) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: "malformed_document".into(),
        description: Some(format!("the document `{key}` in Redis: {problem}")),
    }
}

#[async_trait]
impl SharedState for RedisState {
    async fn read(&self, key: &str) -> Result<Option<(Value, u64)>, Error> {
        check_key(key)?;
        let (version, text): (Option<u64>, Option<String>) = self
            .redis
            .query(
                "read",
                redis::cmd("HMGET")
                    .arg(format!("{}{key}", self.documents))
                    .arg("v")
                    .arg("d"),
            )
            .await?;
        match (version, text) {
            (Some(version), Some(text)) => serde_json::from_str(&text)
                .map(|document| Some((document, version)))
                .map_err(|_| malformed(key, "not JSON")),
            (None, None) => Ok(None),
            _ => Err(malformed(
                key,
                "a version without a document, or the reverse",
            )),
        }
    }

    async fn write_if(
        &self,
        key: &str,
        document: &Value,
        expected: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        check_key(key)?;
        check_document(document)?;
        let expected = expected.map(|v| v.to_string()).unwrap_or_default();
        self.redis
            .run(
                "write",
                self.redis
                    .inner
                    .scripts
                    .write_if
                    .key(format!("{}{key}", self.documents))
                    .key(&self.versions)
                    .arg(expected)
                    .arg(document.to_string()),
            )
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        self.redis
            .query::<u64>(
                "delete",
                redis::cmd("DEL").arg(format!("{}{key}", self.documents)),
            )
            .await
            .map(|_| ())
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, Error> {
        let folder = folder.trim_matches('/');
        if !folder.is_empty() {
            check_key(folder)?;
        }
        // Keys hold no glob character (`check_key`), and the prefix and namespace neither.
        let pattern = if folder.is_empty() {
            format!("{}*", self.documents)
        } else {
            format!("{}{folder}/*", self.documents)
        };
        let mut found = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .redis
                .query(
                    "list",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            found.extend(
                keys.into_iter()
                    .filter_map(|k| k.strip_prefix(&self.documents).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may give a key twice.
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn try_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, Error> {
        check_key(key)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let taken: u8 = self
            .redis
            .run(
                "lease",
                self.redis
                    .inner
                    .scripts
                    .take_lease
                    .key(format!("{}{key}", self.leases))
                    .arg(holder)
                    .arg(ttl_ms),
            )
            .await?;
        Ok(taken == 1)
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), Error> {
        check_key(key)?;
        self.redis
            .run::<u8>(
                "release",
                self.redis
                    .inner
                    .scripts
                    .release_lease
                    .key(format!("{}{key}", self.leases))
                    .arg(holder),
            )
            .await
            .map(|_| ())
    }
}
