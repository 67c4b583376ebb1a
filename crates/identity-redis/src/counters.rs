//! [`RedisCounters`]: budgets counted in Redis, so that replicas share one allowance.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_budget::{BudgetConfig, Counters, SLOT_TTL, Slot, Taken};
use identity_core::Error;
use redis::Script;

use crate::state::Redis;

/// Takes one request by the generic cell rate algorithm (as `governor` counts in memory): the
/// key holds the theoretical arrival time, in microseconds of the server's clock (so that
/// replicas' clocks do not matter). A full allowance may be spent at once and refills one
/// request every `interval`.
const TAKE: &str = r"
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_us)
if tat < now_us then tat = now_us end
local next_tat = tat + interval
local allowed_at = next_tat - interval * burst
if allowed_at > now_us then
  return {0, allowed_at - now_us}
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now_us) / 1000) + 1000)
return {1, math.floor((now_us - allowed_at) / interval)}
";

/// Enters one call if fewer than the limit are in flight: each call is a member of a sorted
/// set scored by when it lapses, so that the calls of a replica that died leave by themselves.
const ENTER: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
";

/// Adds to a day's spend; the day's counter lapses two days later.
const ADD_SPEND: &str = r"
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 172800)
return total
";

/// Budgets counted in Redis: one allowance for every replica. Requests by the generic cell
/// rate algorithm on the server's clock, calls in flight as members of a sorted set that lapse
/// after [`SLOT_TTL`], spend per day with `INCRBY`; each a Lua script, atomic on the server.
/// Keys name the budget by its id (not its position), so that replicas whose configurations
/// list budgets in another order still share them. Made by [`Redis::counters`].
pub struct RedisCounters {
    redis: Redis,
    base: String,
    budgets: Vec<Allowance>,
    take: Script,
    enter: Script,
    add_spend: Script,
}

/// What the counters need of one budget.
#[derive(Debug)]
struct Allowance {
    id: String,
    /// Microseconds per request, and the burst, when the budget limits requests.
    rate: Option<(f64, u32)>,
}

impl fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCounters")
            .field("redis", &self.redis)
            .field("budgets", &self.budgets)
            .finish_non_exhaustive()
    }
}

fn segment(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

impl Redis {
    /// Counters for `budgets` (in the order [`identity_budget::Budgets`] is given them).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let redis = identity_redis::Redis::open("redis://127.0.0.1:6379", None, None, None, "agent-identity", Duration::from_secs(2))?;
    /// let budget: identity_budget::BudgetConfig = serde_json::from_value(serde_json::json!(
    ///     {"id": "per-user", "per": "user", "requests": 50, "window_secs": 3600})).unwrap();
    /// let counters = redis.counters(&[budget.clone()]);
    /// let budgets = identity_budget::Budgets::with_counters(vec![budget], std::sync::Arc::new(counters));
    /// assert!(budgets.is_ok());
    /// # Ok::<(), String>(())
    /// ```
    pub fn counters(&self, budgets: &[BudgetConfig]) -> RedisCounters {
        let budgets = budgets
            .iter()
            .map(|budget| Allowance {
                id: budget.id.clone(),
                rate: budget.request_rate(),
            })
            .collect();
        RedisCounters {
            redis: self.clone(),
            base: format!("{}:{{budgets}}", self.prefix()),
            budgets,
            take: Script::new(TAKE),
            enter: Script::new(ENTER),
            add_spend: Script::new(ADD_SPEND),
        }
    }
}

impl RedisCounters {
    fn key(&self, kind: &str, budget: usize, key: &str) -> Option<String> {
        let allowance = self.budgets.get(budget)?;
        Some(format!(
            "{}:{kind}:{}:{}",
            self.base,
            segment(&allowance.id),
            segment(key)
        ))
    }
}

/// Gives a call's slot back when dropped.
struct RedisSlot {
    redis: Redis,
    key: String,
    member: String,
}

impl Drop for RedisSlot {
    fn drop(&mut self) {
        let (redis, key, member) = (
            self.redis.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.member),
        );
        // Without a runtime, the slot lapses by itself after SLOT_TTL.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = redis.leave(&key, &member).await {
                    tracing::warn!(error = %err, "a call's budget slot was not given back; it lapses by itself");
                }
            });
        }
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn take(&self, budget: usize, key: &str) -> Result<Taken, Error> {
        let (Some(Some((interval, burst))), Some(redis_key)) = (
            self.budgets.get(budget).map(|b| b.rate),
            self.key("requests", budget, key),
        ) else {
            return Ok(Taken::Granted {
                remaining: u32::MAX,
            });
        };
        let (granted, amount): (u8, i64) = self
            .redis
            .run(
                "budget take",
                self.take
                    .key(redis_key)
                    .arg(format!("{interval:.3}"))
                    .arg(burst),
            )
            .await?;
        Ok(if granted == 1 {
            Taken::Granted {
                remaining: u32::try_from(amount).unwrap_or(0),
            }
        } else {
            Taken::Refused {
                retry_after: Duration::from_micros(u64::try_from(amount).unwrap_or(1)),
            }
        })
    }

    async fn enter(&self, budget: usize, key: &str, limit: u32) -> Result<Option<Slot>, Error> {
        let Some(redis_key) = self.key("in-flight", budget, key) else {
            return Ok(Some(Slot::new(())));
        };
        let member = crate::state::random_id();
        let entered: u8 = self
            .redis
            .run(
                "budget enter",
                self.enter
                    .key(&redis_key)
                    .arg(limit)
                    .arg(&member)
                    .arg(u64::try_from(SLOT_TTL.as_millis()).unwrap_or(u64::MAX)),
            )
            .await?;
        Ok((entered == 1).then(|| {
            Slot::new(RedisSlot {
                redis: self.redis.clone(),
                key: redis_key,
                member,
            })
        }))
    }

    async fn add_spend(
        &self,
        budget: usize,
        key: &str,
        day: i64,
        micro_usd: u64,
    ) -> Result<u64, Error> {
        let Some(redis_key) = self.key("spend", budget, key) else {
            return Ok(0);
        };
        self.redis
            .run(
                "budget spend",
                self.add_spend
                    .key(format!("{redis_key}:{day}"))
                    .arg(micro_usd),
            )
            .await
    }

    async fn spent(&self, budget: usize, key: &str, day: i64) -> Result<u64, Error> {
        let Some(redis_key) = self.key("spend", budget, key) else {
            return Ok(0);
        };
        let spent: Option<u64> = self
            .redis
            .query(
                "budget spent",
                redis::cmd("GET").arg(format!("{redis_key}:{day}")),
            )
            .await?;
        Ok(spent.unwrap_or(0))
    }
}
