//! Canaries compiled for resolution: which arm a caller is on, by a stable hash.

use identity_core::{CanaryWeight, CredentialRef, RequestContext, StickTo};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Which of a rule's credentials a resolution got.
///
/// ```
/// assert_eq!(identity_router::Arm::Canary.as_str(), "canary");
/// assert_eq!(identity_router::Arm::default(), identity_router::Arm::Primary);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Arm {
    /// The rule's own credential (also when its canary fell back to it).
    #[default]
    Primary,
    /// The rule's canary credential.
    Canary,
}

impl Arm {
    /// `primary` or `canary`, for metrics and answers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Canary => "canary",
        }
    }

    /// True for the canary.
    pub const fn is_canary(self) -> bool {
        matches!(self, Self::Canary)
    }
}

/// A rule's canary, checked.
#[derive(Debug)]
pub(crate) struct CompiledCanary {
    pub(crate) credential_ref: CredentialRef,
    /// Index of the canary's store in the router's store list.
    pub(crate) store: usize,
    pub(crate) weight: CanaryWeight,
    pub(crate) stick_to: StickTo,
    pub(crate) fall_back: bool,
}

impl CompiledCanary {
    /// Whether the caller of `ctx` is on the canary arm of the rule `rule_id`.
    ///
    /// The arm is a SHA-256 of the rule's id and the caller's key, so that it is the same on
    /// every replica and in every version (a process-seeded hash would move users between
    /// arms on each restart), and a user on one rule's canary is not thereby on every
    /// rule's. The first 64 bits, scaled to a million, are compared with the weight.
    pub(crate) fn picks(&self, rule_id: &str, ctx: &RequestContext) -> bool {
        let ppm = self.weight.parts_per_million();
        if ppm == 0 {
            return false;
        }
        if ppm >= CanaryWeight::MAX_PARTS_PER_MILLION {
            return true;
        }
        bucket(rule_id, stick_key(self.stick_to, ctx)) < ppm
    }
}

/// What `stick_to` keeps a caller on one arm by.
fn stick_key(stick_to: StickTo, ctx: &RequestContext) -> (&'static str, &str) {
    match (stick_to, ctx.spiffe_id.as_deref()) {
        (StickTo::Workload, Some(workload)) => ("workload", workload),
        _ => ("user", ctx.user_id.as_str()),
    }
}

/// The caller's place among a million, for the rule `rule_id`.
pub(crate) fn bucket(rule_id: &str, (kind, key): (&str, &str)) -> u32 {
    let mut hasher = Sha256::new();
    // Each part is length-prefixed so that no two (rule, key) pairs hash the same bytes.
    for part in [rule_id, kind, key] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let scaled = (u128::from(u64::from_be_bytes(first)) * 1_000_000) >> 64;
    // Below a million by construction.
    u32::try_from(scaled).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_bucket_is_below_a_million_and_stable(rule in ".{0,20}", user in ".{0,40}") {
            let first = bucket(&rule, ("user", &user));
            prop_assert!(first < 1_000_000);
            prop_assert_eq!(first, bucket(&rule, ("user", &user)));
        }

        #[test]
        fn raising_the_weight_keeps_everyone_already_on_the_canary(
            user in "[a-z0-9-]{1,30}", small in 0u32..=100, extra in 0u32..=100,
        ) {
            let ctx = RequestContext::builder().user_id(user).resource_id("r")
                .resource_kind(identity_core::ResourceKind::Shared).provider("p").model("m")
                .action("read").trace_id("t").build().unwrap();
            let canary = |percent: u32| CompiledCanary {
                credential_ref: CredentialRef::new("c").unwrap(),
                store: 0,
                weight: CanaryWeight::percent(f64::from(percent.min(100))).unwrap(),
                stick_to: StickTo::User,
                fall_back: false,
            };
            if canary(small).picks("rule", &ctx) {
                prop_assert!(canary(small + extra).picks("rule", &ctx));
            }
        }
    }

    #[test]
    fn the_parts_of_the_key_cannot_run_together() {
        assert_ne!(bucket("ab", ("user", "c")), bucket("a", ("user", "bc")));
    }
}
