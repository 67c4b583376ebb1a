//! [`StateCounters`]: budgets counted in a [`SharedState`] by check-and-set, so that replicas
//! sharing Vault (or any shared state) share one allowance.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use identity_core::Error;
use identity_state::SharedState;
use serde_json::{Value, json};

use crate::config::BudgetConfig;
use crate::counters::{Counters, SLOT_TTL, Slot, Taken};

/// How long one count keeps trying while other replicas win the check-and-set before it
/// gives up (and the gate refuses the call, as for a store that cannot be reached).
const CONTENDED_AFTER: Duration = Duration::from_secs(10);

/// The longest pause between two tries of a contended count.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// The largest spend a document keeps exactly (numbers in shared documents are exact to
/// 2^53); a day's spend stops growing there, far above any limit a budget may name.
const MAX_SPEND: u64 = (1 << 53) - 1;

/// Budgets counted in a [`SharedState`]: one allowance for every replica that shares the
/// state, on any backend (Vault KV v2, one process's memory, Redis). Each count reads a
/// document and writes it back only if no other replica wrote it meanwhile, and tries again
/// when one did.
///
/// - Requests: the generic cell rate algorithm, as [`MemoryCounters`](crate::MemoryCounters)
///   counts in memory, on this host's clock: replicas' clocks must agree (NTP) to within a
///   small part of the time between two requests.
/// - Calls in flight: the document lists each call with the time it lapses ([`SLOT_TTL`]
///   after it entered), so that the calls of a replica that died leave by themselves.
/// - Spend: one sum for the current day (UTC), begun again on the first spend of a new day.
///
/// Documents are kept at `requests/`, `in-flight/` and `spend/`, then the budget's id and the
/// key, each base64url-encoded; a budget is named by its id, not its position, so replicas
/// listing budgets in another order still share them. A count is a read and a write: on
/// Vault, some milliseconds, and under heavy contention for one key several rounds. Redis
/// has counters of its own that run each count as one script on the server.
///
/// ```
/// use std::sync::Arc;
/// use identity_budget::{BudgetConfig, Counters, StateCounters, Taken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let budget: BudgetConfig = serde_json::from_value(serde_json::json!(
///     {"id": "per-user", "per": "user", "requests": 1, "window_secs": 60}))?;
/// let state = Arc::new(identity_state::MemoryState::default());
/// let one = StateCounters::new(state.clone(), &[budget.clone()]);
/// let other = StateCounters::new(state, &[budget]);
/// assert!(matches!(one.take(0, "alice").await?, Taken::Granted { .. }));
/// // The other replica sees the allowance spent.
/// assert!(matches!(other.take(0, "alice").await?, Taken::Refused { .. }));
/// # Ok(()) }
/// ```
pub struct StateCounters {
    state: Arc<dyn SharedState>,
    budgets: Vec<Allowance>,
}

/// What the counters need of one budget.
#[derive(Debug)]
struct Allowance {
    /// The budget's id, encoded for a key.
    id: String,
    /// Microseconds per request, and the burst, when the budget limits requests.
    rate: Option<(f64, u32)>,
}

impl fmt::Debug for StateCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCounters")
            .field("state", &self.state)
            .field("budgets", &self.budgets)
            .finish()
    }
}

fn segment(text: &str) -> String {
    segment_bytes(text.as_bytes())
}

/// Microseconds since 1970 on this host's clock.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// A document's unsigned number field (0 when absent).
fn field(document: Option<&Value>, name: &str) -> u64 {
    document
        .and_then(|d| d.get(name))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// What a count decides from the document it read: the document to write back (none when
/// nothing changes), and the answer.
type Decision<T> = (Option<Value>, T);

impl StateCounters {
    /// Counters for `budgets` (in the order [`Budgets`](crate::Budgets) is given them), kept
    /// in `state`: give each deployment's budgets a namespace of their own
    /// (`identity_state::Namespaced`).
    #[must_use]
    pub fn new(state: Arc<dyn SharedState>, budgets: &[BudgetConfig]) -> Self {
        let budgets = budgets
            .iter()
            .map(|budget| Allowance {
                id: segment(&budget.id),
                rate: budget.request_rate(),
            })
            .collect();
        Self { state, budgets }
    }

    fn key(&self, kind: &str, budget: usize, key: &str) -> Option<String> {
        let allowance = self.budgets.get(budget)?;
        Some(format!("{kind}/{}/{}", allowance.id, segment(key)))
    }

    /// Reads the document at `key`, decides, and writes the decision back if no other writer
    /// came first; otherwise reads again, after a random pause that grows with each try, so
    /// that contenders spread out.
    async fn update<T>(
        state: &dyn SharedState,
        key: &str,
        decide: impl Fn(Option<&Value>) -> Decision<T>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let mut tries: u32 = 0;
        loop {
            let round = Instant::now();
            let read = state.read(key).await?;
            let (document, version) = match &read {
                Some((document, version)) => (Some(document), Some(*version)),
                None => (None, None),
            };
            let (write, answer) = decide(document);
            let Some(write) = write else {
                return Ok(answer);
            };
            if state.write_if(key, &write, version).await?.is_some() {
                return Ok(answer);
            }
            tries += 1;
            if started.elapsed() >= CONTENDED_AFTER {
                return Err(Error::unavailable(
                    "budget counters",
                    format!("other replicas kept changing the count; gave up after {tries} tries"),
                ));
            }
            // Contenders spread over a span that grows with each lost round, in units of the
            // backend's own round trip: microseconds on Redis, milliseconds on Vault.
            let pause = (round.elapsed() * tries.min(16))
                .min(MAX_PAUSE)
                .mul_f64(fastrand::f64());
            // The runtime's timer counts whole milliseconds: a shorter pause would last one.
            if pause < Duration::from_millis(1) {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Takes one request by the generic cell rate algorithm: the document holds the theoretical
/// arrival time (`tat_us`).
fn take_request(document: Option<&Value>, now: u64, interval: f64, burst: u32) -> Decision<Taken> {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "microseconds since 1970, exact below 2^53; the results are non-negative"
    )]
    {
        let now_f = now as f64;
        let tat = (field(document, "tat_us") as f64).max(now_f);
        let next = tat + interval;
        let allowed_at = next - interval * f64::from(burst);
        if allowed_at > now_f {
            let wait = Duration::from_micros((allowed_at - now_f).ceil() as u64);
            return (None, Taken::Refused { retry_after: wait });
        }
        let remaining = ((now_f - allowed_at) / interval).floor() as u32;
        (
            Some(json!({ "tat_us": next.round() as u64 })),
            Taken::Granted { remaining },
        )
    }
}

/// Enters one call if fewer than `limit` are in flight (lapsed calls left out).
fn enter_call(document: Option<&Value>, now_ms: u64, member: &str, limit: u32) -> Decision<bool> {
    let mut calls: serde_json::Map<String, Value> = document
        .and_then(|d| d.get("calls"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    calls.retain(|_, lapses| lapses.as_u64().is_some_and(|at| at > now_ms));
    if calls.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
        return (None, false);
    }
    let lapses = now_ms + u64::try_from(SLOT_TTL.as_millis()).unwrap_or(u64::MAX);
    calls.insert(member.to_owned(), json!(lapses));
    (Some(json!({ "calls": calls })), true)
}

/// Leaves one call: its entry goes, with those that lapsed.
fn leave_call(document: Option<&Value>, now_ms: u64, member: &str) -> Decision<()> {
    let Some(calls) = document
        .and_then(|d| d.get("calls"))
        .and_then(Value::as_object)
    else {
        return (None, ());
    };
    if !calls.contains_key(member) {
        return (None, ());
    }
    let mut calls = calls.clone();
    calls.remove(member);
    calls.retain(|_, lapses| lapses.as_u64().is_some_and(|at| at > now_ms));
    (Some(json!({ "calls": calls })), ())
}

/// Gives a call's slot back when dropped.
struct StateSlot {
    state: Arc<dyn SharedState>,
    key: String,
    member: String,
}

impl Drop for StateSlot {
    fn drop(&mut self) {
        let (state, key, member) = (
            self.state.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.member),
        );
        // Without a runtime, the slot lapses by itself after SLOT_TTL.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let leave = |document: Option<&Value>| leave_call(document, now_us() / 1000, &member);
                if let Err(err) = StateCounters::update(state.as_ref(), &key, leave).await {
                    tracing::warn!(error = %err, "a call's budget slot was not given back; it lapses by itself");
                }
            });
        }
    }
}

/// A name for one call, unique across replicas.
fn call_id() -> String {
    let mut random = [0u8; 12];
    // Without randomness, the clock and the process still tell calls apart.
    if getrandom::fill(&mut random).is_err() {
        let seed = u128::from(now_us())
            ^ (u128::from(std::process::id()) << 64)
            ^ u128::from(fastrand::u64(..));
        random.copy_from_slice(&seed.to_le_bytes()[..12]);
    }
    segment_bytes(&random)
}

fn segment_bytes(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[async_trait]
impl Counters for StateCounters {
    async fn take(&self, budget: usize, key: &str) -> Result<Taken, Error> {
        let (Some(Some((interval, burst))), Some(key)) = (
            self.budgets.get(budget).map(|b| b.rate),
            self.key("requests", budget, key),
        ) else {
            // A budget these counters were not made for, or one without a rate.
            return Ok(Taken::Granted {
                remaining: u32::MAX,
            });
        };
        Self::update(self.state.as_ref(), &key, |document| {
            take_request(document, now_us(), interval, burst)
        })
        .await
    }

    async fn enter(&self, budget: usize, key: &str, limit: u32) -> Result<Option<Slot>, Error> {
        let Some(key) = self.key("in-flight", budget, key) else {
            return Ok(Some(Slot::new(())));
        };
        let member = call_id();
        let entered = Self::update(self.state.as_ref(), &key, |document| {
            enter_call(document, now_us() / 1000, &member, limit)
        })
        .await?;
        Ok(entered.then(|| {
            Slot::new(StateSlot {
                state: self.state.clone(),
                key,
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
        let Some(key) = self.key("spend", budget, key) else {
            return Ok(0);
        };
        Self::update(self.state.as_ref(), &key, |document| {
            let before = if spend_day(document) == Some(day) {
                field(document, "micro_usd")
            } else {
                0
            };
            let total = before.saturating_add(micro_usd).min(MAX_SPEND);
            (Some(json!({ "day": day, "micro_usd": total })), total)
        })
        .await
    }

    async fn spent(&self, budget: usize, key: &str, day: i64) -> Result<u64, Error> {
        let Some(key) = self.key("spend", budget, key) else {
            return Ok(0);
        };
        let read = self.state.read(&key).await?;
        let document = read.as_ref().map(|(document, _)| document);
        Ok(if spend_day(document) == Some(day) {
            field(document, "micro_usd")
        } else {
            0
        })
    }
}

/// The day a spend document counts.
fn spend_day(document: Option<&Value>) -> Option<i64> {
    document.and_then(|d| d.get("day")).and_then(Value::as_i64)
}
