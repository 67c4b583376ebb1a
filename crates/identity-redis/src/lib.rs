//! Redis for agent-identity: the state that replicas of one deployment share.
//!
//! - [`RedisConfig`]: the server's URL (`redis://` or `rediss://`), the ACL user, the
//!   variable holding the password, the CA for TLS, the prefix of every key.
//! - [`Redis`]: one multiplexed connection that reconnects by itself (the `redis` crate's
//!   tokio connection manager), made on first use; to a fixed address, or to the master that
//!   Redis Sentinel reports, asked again after a failover.
//! - [`RedisState`]: a namespace of [`identity_state::SharedState`] in Redis: versioned
//!   documents written by check-and-set in a Lua script, leases taken by a script that sets the
//!   holder with a time to live (`PX`) only when the lease is free or already theirs.
//! - `RedisCounters` (feature `budget`): budgets counted once for every replica.
//!
//! What goes in Redis is sealed by the crates that keep it (users' tokens, clients' secrets);
//! Redis sees who and when, not what. A Redis Cluster is supported in its keys' layout (a
//! namespace's keys share one hash slot), not yet in the connection.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use identity_state::SharedState;
//!
//! let redis = identity_redis::RedisConfig::new("redis://127.0.0.1:6379")
//!     .connect("redis", &|name| std::env::var(name).ok())?;
//! let clients = redis.state("clients")?;
//! let version = clients.write_if("issuer/profile", &serde_json::json!({"client_id": "c"}), None).await?;
//! # Ok(()) }
//! ```

mod config;
mod connection;
#[cfg(feature = "budget")]
mod counters;
mod state;

pub use config::RedisConfig;
#[cfg(feature = "budget")]
pub use counters::RedisCounters;
#[cfg(feature = "budget")]
pub use identity_budget::SLOT_TTL;
pub use state::{Redis, RedisState, Sentinels};

/// The backend name in errors.
pub const BACKEND: &str = "redis";
