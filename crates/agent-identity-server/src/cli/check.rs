//! `check`: lints over a configuration that loads.
//!
//! Each lint is a warning: the configuration works, but probably not as meant.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use agent_identity::{DEFAULT_STORE, OneOrMany, Router, RoutingRule};

use crate::config::Loaded;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// What kind of finding.
    pub kind: LintKind,
    /// The sentence to show.
    pub message: String,
}

/// The kinds of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintKind {
    /// An earlier rule matches every request this one matches.
    NeverWins,
    /// Two rules of equal priority can match one request; declaration order decides.
    EqualPriorityOverlap,
    /// A credential of a memory store that no rule names.
    UnusedCredential,
    /// A rule names a ref its memory store does not hold.
    MissingCredential,
    /// A rule or credential allows delivery, but no caller may receive secrets.
    DeliveryWithoutReceiver,
    /// A ref looks like secret material rather than a name.
    SecretShapedRef,
    /// A rule matches a workload, but no caller can prove one: the body's word decides.
    UnprovenWorkload,
    /// Calls are held for approval, but no caller, or no named approver, can approve them.
    NoApprover,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every finding about `loaded`.
pub fn lint(loaded: &Loaded) -> Vec<Lint> {
    let mut lints = rule_lints(&loaded.router);
    let mut used: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for rule in loaded.router.rules() {
        let store = rule.store.as_deref().unwrap_or(DEFAULT_STORE);
        used.entry(store).or_default().insert(&rule.credential_ref);
        if let Some(credentials) = loaded.memory_credentials.get(store)
            && !credentials
                .iter()
                .any(|c| c.reference.as_str() == rule.credential_ref)
        {
            lints.push(Lint {
                kind: LintKind::MissingCredential,
                message: format!(
                    "rule `{}` names credential {}, which store `{store}` does not hold: it will always be denied",
                    rule.id,
                    shown(&rule.credential_ref)
                ),
            });
        }
    }
    for (store, credentials) in &loaded.memory_credentials {
        for credential in credentials {
            let named = used
                .get(store.as_str())
                .is_some_and(|refs| refs.contains(credential.reference.as_str()));
            if !named {
                lints.push(Lint {
                    kind: LintKind::UnusedCredential,
                    message: format!(
                        "credential `{}` (ref {}) of store `{store}` is named by no rule",
                        credential.id,
                        shown(credential.reference.as_str())
                    ),
                });
            }
        }
    }
    lints.extend(delivery_lints(loaded));
    lints.extend(approver_lints(loaded));
    lints.extend(workload_lints(loaded));
    lints.extend(
        crate::config::secret_shaped_refs(loaded)
            .into_iter()
            .map(|item| Lint {
                kind: LintKind::SecretShapedRef,
                message: format!(
                    "{item}: its credential ref looks like a secret (a token, not a name); refs are shown in explanations and listings, so keep the secret in the store and name the slot"
                ),
            }),
    );
    lints
}

/// `matchSpiffeId` rules where no caller proves a workload: without authentication the body's
/// `spiffeId` is taken at its word; with it, no request can match.
fn workload_lints(loaded: &Loaded) -> Vec<Lint> {
    use crate::auth::settings::Callers;
    // Client certificates prove a workload under any mode that authenticates.
    let certificates = loaded
        .server
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_auth.is_some());
    let (proven, consequence) = match &loaded.auth.callers {
        Callers::None => (
            false,
            "no caller authenticates, so any caller can name any workload in the body",
        ),
        Callers::ApiKeys(keys) => (
            keys.iter().any(|key| key.workload.is_some()),
            "no API key has a `spiffe_id`, so no request can match it",
        ),
        Callers::Jwt(jwt) => (
            jwt.trust_domain.is_some(),
            "JWT callers prove no workload (mode `jwt-svid` would), so no request can match it",
        ),
        Callers::X509Svid => (true, ""),
    };
    if proven || certificates || loaded.auth.workload_tokens.is_some() {
        return Vec::new();
    }
    loaded
        .router
        .rules()
        .filter(|rule| rule.match_spiffe_id.is_some())
        .map(|rule| Lint {
            kind: LintKind::UnprovenWorkload,
            message: format!(
                "rule `{}` matches a workload (`matchSpiffeId`), but {consequence}",
                rule.id
            ),
        })
        .collect()
}

/// `reference` as a lint shows it: not at all when it looks like a secret.
fn shown(reference: &str) -> String {
    match agent_identity::CredentialRef::new(reference) {
        Ok(checked) if !checked.looks_like_secret() => format!("`{reference}`"),
        _ => "(a ref shaped like a secret, not shown)".to_owned(),
    }
}

/// `delivery = "reveal"` where no caller can hold `receive-secrets`: the setting does nothing,
/// which is likely not what was meant.
fn delivery_lints(loaded: &Loaded) -> Vec<Lint> {
    use crate::auth::Permission;
    use crate::auth::settings::Callers;
    let someone_may_receive = match &loaded.auth.callers {
        Callers::None => false,
        Callers::ApiKeys(keys) => keys
            .iter()
            .any(|key| key.permissions.contains(Permission::ReceiveSecrets)),
        Callers::Jwt(jwt) => jwt.receive_secrets_scope.is_some(),
        Callers::X509Svid => false,
    };
    if someone_may_receive {
        return Vec::new();
    }
    let rules = loaded
        .router
        .rules()
        .filter(|rule| rule.delivery == agent_identity::Delivery::Reveal)
        .map(|rule| format!("rule `{}`", rule.id));
    let credentials = loaded
        .memory_credentials
        .values()
        .flatten()
        .filter(|credential| credential.delivery == agent_identity::Delivery::Reveal)
        .map(|credential| format!("credential `{}`", credential.id));
    rules
        .chain(credentials)
        .map(|item| Lint {
            kind: LintKind::DeliveryWithoutReceiver,
            message: format!(
                "{item} says `delivery = \"reveal\"`, but no caller holds `receive-secrets` (an API key's `permissions`, or `auth.jwt.receive_secrets_scope`): nothing will be delivered"
            ),
        })
        .collect()
}

/// Calls held for approval that nobody can approve: no caller holds `approve`, or the approvers a
/// rule names are no API key's.
fn approver_lints(loaded: &Loaded) -> Vec<Lint> {
    use crate::auth::Permission;
    use crate::auth::settings::Callers;
    if loaded.approvals.is_none() {
        return Vec::new();
    }
    // With JWTs the approvers are users of the identity provider: their names are not known here.
    let approvers: Option<Vec<&str>> = match &loaded.auth.callers {
        Callers::ApiKeys(keys) => Some(
            keys.iter()
                .filter(|key| key.permissions.contains(Permission::Approve))
                .map(|key| key.name.as_str())
                .collect(),
        ),
        Callers::Jwt(jwt) if jwt.approve_scope.is_some() => None,
        _ => Some(Vec::new()),
    };
    let Some(approvers) = approvers else {
        return Vec::new();
    };
    let mut lints = Vec::new();
    for rule in loaded.router.rules() {
        let Some(demand) = &rule.require_approval else {
            continue;
        };
        let able = approvers
            .iter()
            .filter(|name| demand.may_approve(name))
            .count();
        if (able as u64) < u64::from(demand.required) {
            lints.push(Lint {
                kind: LintKind::NoApprover,
                message: format!(
                    "rule `{}` holds calls for {} approval(s), but only {able} caller(s) with the `approve` permission may give them: its calls will wait until they lapse",
                    rule.id, demand.required
                ),
            });
        }
    }
    lints
}

fn rule_lints(router: &Router) -> Vec<Lint> {
    let rules: Vec<&RoutingRule> = router.rules().collect();
    let mut lints = Vec::new();
    for (j, later) in rules.iter().enumerate() {
        if let Some(earlier) = rules[..j].iter().find(|earlier| covers(earlier, later)) {
            lints.push(Lint {
                kind: LintKind::NeverWins,
                message: format!(
                    "rule `{}` can never win: rule `{}` comes first and matches every request it matches{}",
                    later.id,
                    earlier.id,
                    if router.falls_through() { " (it can still decide by fall-through)" } else { "" },
                ),
            });
            continue;
        }
        for earlier in &rules[..j] {
            if earlier.priority == later.priority && overlap(earlier, later) {
                lints.push(Lint {
                    kind: LintKind::EqualPriorityOverlap,
                    message: format!(
                        "rules `{}` and `{}` have the same priority ({}) and can match the same request; `{}` wins by declaration order",
                        earlier.id,
                        later.id,
                        later.priority.unwrap_or_default(),
                        earlier.id
                    ),
                });
            }
        }
    }
    lints
}

/// True when every context `b` matches, `a` matches too.
fn covers(a: &RoutingRule, b: &RoutingRule) -> bool {
    exact_covers(&a.match_user_id, &b.match_user_id)
        && exact_covers(&a.match_resource_kind, &b.match_resource_kind)
        && exact_covers(&a.match_provider, &b.match_provider)
        && exact_covers(&a.match_spiffe_id, &b.match_spiffe_id)
        && list_covers(&a.match_action, &b.match_action)
        && list_covers(&a.match_phase, &b.match_phase)
        && glob_covers(&a.match_resource_id, &b.match_resource_id)
        && glob_covers(&a.match_model, &b.match_model)
}

/// True when some context may match both (conservative: says yes when unsure).
fn overlap(a: &RoutingRule, b: &RoutingRule) -> bool {
    exact_overlap(&a.match_user_id, &b.match_user_id)
        && exact_overlap(&a.match_resource_kind, &b.match_resource_kind)
        && exact_overlap(&a.match_provider, &b.match_provider)
        && exact_overlap(&a.match_spiffe_id, &b.match_spiffe_id)
        && list_overlap(&a.match_action, &b.match_action)
        && list_overlap(&a.match_phase, &b.match_phase)
        && glob_overlap(&a.match_resource_id, &b.match_resource_id)
        && glob_overlap(&a.match_model, &b.match_model)
}

fn exact_covers<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
    }
}

fn exact_overlap<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn list_covers<T: PartialEq>(a: &Option<OneOrMany<T>>, b: &Option<OneOrMany<T>>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(a), Some(b)) => b.as_slice().iter().all(|v| a.as_slice().contains(v)),
        (Some(_), None) => false,
    }
}

fn list_overlap<T: PartialEq>(a: &Option<OneOrMany<T>>, b: &Option<OneOrMany<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.as_slice().iter().any(|v| b.as_slice().contains(v)),
        _ => true,
    }
}

fn glob_covers(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(a), _) if a == "*" => true,
        (Some(a), Some(b)) if a == b => true,
        (Some(a), Some(b)) if !b.contains('*') => glob_matches(a, b),
        _ => false,
    }
}

fn glob_overlap(a: &Option<String>, b: &Option<String>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    match (a.contains('*'), b.contains('*')) {
        (false, false) => a == b,
        (true, false) => glob_matches(a, b),
        (false, true) => glob_matches(b, a),
        (true, true) => {
            // Two globs can meet unless their fixed starts or fixed ends disagree.
            let (a_head, a_tail) = (
                a.split('*').next().unwrap_or(""),
                a.rsplit('*').next().unwrap_or(""),
            );
            let (b_head, b_tail) = (
                b.split('*').next().unwrap_or(""),
                b.rsplit('*').next().unwrap_or(""),
            );
            (a_head.starts_with(b_head) || b_head.starts_with(a_head))
                && (a_tail.ends_with(b_tail) || b_tail.ends_with(a_tail))
        }
    }
}

/// `*` glob matching by backtracking over the pattern's pieces; patterns here are short.
fn glob_matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else {
                return false;
            };
            (0..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .any(|i| glob_matches(rest, &text[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_identity::{MemoryCredentialStore, ResourceKind};

    fn router(rules: Vec<RoutingRule>) -> Router {
        Router::builder()
            .default_store(MemoryCredentialStore::new())
            .rules(rules)
            .build()
            .unwrap()
    }

    fn kinds(router: &Router) -> Vec<(LintKind, String)> {
        rule_lints(router)
            .into_iter()
            .map(|l| (l.kind, l.message))
            .collect()
    }

    #[test]
    fn a_rule_behind_a_broader_one_never_wins() {
        let r = router(vec![
            RoutingRule::new("broad", "a")
                .with_priority(10)
                .with_match_provider("openai"),
            RoutingRule::new("narrow", "b")
                .with_priority(5)
                .with_match_provider("openai")
                .with_match_user_id("alice"),
            RoutingRule::new("other", "c")
                .with_priority(5)
                .with_match_provider("anthropic"),
            RoutingRule::new("glob", "d")
                .with_priority(1)
                .with_match_provider("openai")
                .with_match_model("gpt-4*"),
        ]);
        let found = kinds(&r);
        assert_eq!(
            found
                .iter()
                .filter(|(k, _)| *k == LintKind::NeverWins)
                .count(),
            2,
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(_, m)| m.contains("`narrow` can never win: rule `broad`"))
        );
        assert!(
            found
                .iter()
                .any(|(_, m)| m.contains("`glob` can never win"))
        );
    }

    #[test]
    fn equal_priority_overlaps_are_reported_and_disjoint_rules_are_not() {
        let r = router(vec![
            RoutingRule::new("reads", "a")
                .with_priority(5)
                .with_match_action(["read", "list"]),
            RoutingRule::new("shared", "b")
                .with_priority(5)
                .with_match_resource_kind(ResourceKind::Shared),
            RoutingRule::new("writes", "c")
                .with_priority(5)
                .with_match_action(["write"])
                .with_match_resource_kind(ResourceKind::Personal),
            RoutingRule::new("db", "d")
                .with_priority(3)
                .with_match_resource_id("db-*-prod"),
            RoutingRule::new("cache", "e")
                .with_priority(3)
                .with_match_resource_id("cache-*"),
        ]);
        let found = kinds(&r);
        let overlaps: Vec<&String> = found
            .iter()
            .filter(|(k, _)| *k == LintKind::EqualPriorityOverlap)
            .map(|(_, m)| m)
            .collect();
        // `reads`/`writes` differ in action, `shared`/`writes` in kind, `db`/`cache` in prefix.
        assert_eq!(overlaps.len(), 1, "{overlaps:?}");
        assert!(overlaps[0].contains("`reads` and `shared`"), "{overlaps:?}");
    }

    #[test]
    fn glob_reasoning() {
        assert!(glob_covers(&Some("gpt-*".into()), &Some("gpt-4o".into())));
        assert!(!glob_covers(&Some("gpt-*".into()), &Some("gpt*".into())));
        assert!(glob_overlap(&Some("db-*".into()), &Some("*-prod".into())));
        assert!(!glob_overlap(&Some("db-*".into()), &Some("cache-*".into())));
        assert!(glob_matches("a*b*c", "aXbYc"));
        assert!(!glob_matches("a*b*c", "acb"));
    }
}
