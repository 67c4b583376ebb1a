//! What permission policies decide: by user, workload, tool and time; forbid over permit;
//! errors refuse; schema problems name their policy.
#![allow(clippy::unwrap_used, reason = "a test that fails should stop")]

use identity_core::{OffsetDateTime, parse_rfc3339};
use identity_policy::{Policies, PolicySource, Query, ResourceRef};
use proptest::prelude::*;

fn policies(text: &str) -> Policies {
    Policies::new(&[PolicySource::new("test.cedar", text)], None).unwrap()
}

fn at(text: &str) -> OffsetDateTime {
    parse_rfc3339(text).unwrap()
}

const AGENT: &str = "spiffe://prod.example/agent";
const ROGUE: &str = "spiffe://prod.example/rogue";

fn tool_call(user: &str, workload: &str, tool: &str) -> Query {
    Query::new("call-tool", ResourceRef::tool(tool))
        .user(user)
        .workload(workload)
        .at(at("2026-11-30T12:00:00Z"))
}

const MAIL: &str = r#"
    @id("agent-sends-mail")
    permit(principal in Workload::"spiffe://prod.example/agent",
           action == Action::"call-tool", resource == Tool::"send_email");
    @id("bob-never")
    forbid(principal == User::"bob", action, resource);
"#;

#[test]
fn a_policy_permits_by_workload_and_tool_and_nothing_else() {
    let policies = policies(MAIL);
    let decision = policies.authorize(&tool_call("alice", AGENT, "send_email"), true);
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.policies, ["agent-sends-mail"]);

    let other_tool = policies.authorize(&tool_call("alice", AGENT, "delete_repo"), true);
    assert!(!other_tool.allowed);
    assert!(other_tool.policies.is_empty());
    assert_eq!(other_tool.explain(), "no policy permits it");

    let other_workload = policies.authorize(&tool_call("alice", ROGUE, "send_email"), true);
    assert!(!other_workload.allowed);
}

#[test]
fn a_forbid_by_user_overrides_a_permit() {
    let decision = policies(MAIL).authorize(&tool_call("bob", AGENT, "send_email"), true);
    assert!(!decision.allowed);
    assert_eq!(decision.policies, ["bob-never"]);
    assert_eq!(decision.explain(), "forbidden by `bob-never`");
}

#[test]
fn without_a_required_permit_only_a_forbid_refuses() {
    let policies = policies(MAIL);
    assert!(
        policies
            .authorize(&tool_call("alice", AGENT, "delete_repo"), false)
            .allowed
    );
    assert!(
        !policies
            .authorize(&tool_call("bob", AGENT, "delete_repo"), false)
            .allowed
    );
}

#[test]
fn policies_decide_by_time_of_day_and_by_date() {
    let policies = policies(
        r#"
        @id("office-hours")
        permit(principal, action == Action::"resolve", resource)
            when { context.hour >= 8 && context.hour < 18 };
        @id("not-after-the-freeze")
        forbid(principal, action, resource)
            when { context.now >= datetime("2026-12-24T00:00:00Z") };
        "#,
    );
    let query = |when: &str| {
        Query::new("resolve", ResourceRef::credential("c1"))
            .user("alice")
            .at(at(when))
    };
    assert!(
        policies
            .authorize(&query("2026-11-30T09:30:00Z"), true)
            .allowed
    );
    assert!(
        !policies
            .authorize(&query("2026-11-30T21:00:00Z"), true)
            .allowed
    );
    let frozen = policies.authorize(&query("2026-12-28T09:30:00Z"), true);
    assert!(!frozen.allowed);
    assert_eq!(frozen.policies, ["not-after-the-freeze"]);
}

#[test]
fn facts_reach_the_policies() {
    let policies = policies(
        r#"
        @id("low-risk-only")
        permit(principal, action == Action::"call-tool", resource)
            when { context has risk && context.risk == "low" };
        "#,
    );
    let query = tool_call("alice", AGENT, "search");
    assert!(!policies.authorize(&query, true).allowed);
    assert!(
        !policies
            .authorize(&query.clone().fact("risk", "high"), true)
            .allowed
    );
    assert!(policies.authorize(&query.fact("risk", "low"), true).allowed);
}

#[test]
fn a_policy_that_cannot_be_evaluated_refuses_even_when_another_permits() {
    // Validation cannot see an overflow: it fails when evaluated.
    let policies = policies(
        r#"
        @id("everyone") permit(principal, action, resource);
        @id("overflows") forbid(principal, action, resource)
            when { context.hour * 9223372036854775807 > 1 };
        "#,
    );
    let decision = policies.authorize(&tool_call("alice", AGENT, "search"), false);
    assert!(!decision.allowed, "{decision:?}");
    assert_eq!(decision.errors.len(), 1);
    assert!(
        decision.errors[0].contains("overflows"),
        "{:?}",
        decision.errors
    );
    assert!(
        decision
            .explain()
            .starts_with("a policy could not be evaluated")
    );
}

#[test]
fn a_check_without_a_principal_refuses() {
    let policies = policies(r#"permit(principal, action, resource);"#);
    let decision = policies.authorize(&Query::new("call-tool", ResourceRef::tool("x")), false);
    assert!(!decision.allowed);
    assert!(decision.errors[0].contains("neither a user nor a workload"));
}

#[test]
fn a_workload_alone_is_the_principal() {
    let policies = policies(MAIL);
    let query = Query::new("call-tool", ResourceRef::tool("send_email")).workload(AGENT);
    assert!(policies.authorize(&query, true).allowed);
}

#[test]
fn schema_errors_name_the_policy() {
    let err = Policies::new(
        &[PolicySource::new(
            "agents.cedar",
            r#"
            @id("fine") permit(principal, action == Action::"resolve", resource);
            @id("typo") permit(principal == Usr::"alice", action, resource);
            @id("no-such-fact") permit(principal, action, resource) when { context.colour == "red" };
            "#,
        )],
        None,
    )
    .unwrap_err();
    let places: Vec<&str> = err.problems.iter().map(|p| p.place.as_str()).collect();
    assert!(places.contains(&"policy `typo`"), "{err}");
    assert!(places.contains(&"policy `no-such-fact`"), "{err}");
    assert!(!places.iter().any(|place| place.contains("fine")), "{err}");
}

#[test]
fn a_policy_without_an_id_is_named_by_its_file_and_position() {
    let err = Policies::new(
        &[PolicySource::new(
            "agents.cedar",
            "permit(principal, action, resource);\npermit(principal == Usr::\"x\", action, resource);",
        )],
        None,
    )
    .unwrap_err();
    assert_eq!(err.problems[0].place, "policy `agents.cedar#1`", "{err}");
}

#[test]
fn a_custom_schema_is_used_and_its_own_errors_reported() {
    let err = Policies::new(&[], Some("entity User in [Nowhere];")).unwrap_err();
    assert_eq!(err.problems[0].place, "schema");

    let schema = r#"entity User; entity Tool;
        action "call-tool" appliesTo { principal: [User], resource: [Tool], context: {} };"#;
    // The default schema's facts are not in this one.
    let err = Policies::new(
        &[PolicySource::new(
            "p",
            r#"permit(principal, action, resource) when { context.hour > 1 };"#,
        )],
        Some(schema),
    )
    .unwrap_err();
    assert!(err.problems[0].place.starts_with("policy `p#0`"), "{err}");
}

#[test]
fn approval_annotations_are_checked() {
    let bad = [
        (
            r#"@approvers("a") permit(principal, action, resource);"#,
            "needs `@approval",
        ),
        (
            r#"@approval("yes") permit(principal, action, resource);"#,
            "must be \"required\"",
        ),
        (
            r#"@approval("required") forbid(principal, action, resource);"#,
            "permit policy",
        ),
        (
            r#"@approval("required") @approvers("a, b") @required_approvers("3") permit(principal, action, resource);"#,
            "3 approvers are required",
        ),
        (
            r#"@approval("required") @break_glass("sometimes") permit(principal, action, resource);"#,
            "`@break_glass`",
        ),
    ];
    for (text, expected) in bad {
        let err = Policies::new(&[PolicySource::new("p", text)], None).unwrap_err();
        assert!(err.to_string().contains(expected), "{text}: {err}");
    }
    let policies = policies(
        r#"@id("two-of-three") @approval("required") @approvers("alice, bob carol")
           @required_approvers("2") @break_glass("allowed") @approval_ttl_secs("60")
           permit(principal, action == Action::"proxy", resource);"#,
    );
    let decision = policies.authorize(
        &Query::new("proxy", ResourceRef::upstream("payments")).user("u"),
        true,
    );
    let demand = decision.approval.unwrap();
    assert_eq!(demand.approvers, ["alice", "bob", "carol"]);
    assert_eq!(
        (demand.required, demand.break_glass, demand.ttl_secs),
        (2, true, 60)
    );
}

#[test]
fn duplicate_ids_are_refused() {
    let err = Policies::new(
        &[
            PolicySource::new("a", r#"@id("same") permit(principal, action, resource);"#),
            PolicySource::new("b", r#"@id("same") permit(principal, action, resource);"#),
        ],
        None,
    )
    .unwrap_err();
    assert_eq!(err.problems[0].place, "policy `same` in b");
}

/// One generated policy: permit or forbid; on one user, one workload's users, or anyone; on
/// one action or any; on one tool or any; perhaps with a condition on a fact.
#[derive(Debug, Clone)]
struct Generated {
    permit: bool,
    principal: Option<(bool, usize)>,
    action: Option<usize>,
    tool: Option<usize>,
    condition: Option<usize>,
}

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const WORKLOADS: [&str; 2] = [AGENT, ROGUE];
const ACTIONS: [&str; 2] = ["call-tool", "use-skill"];
const TOOLS: [&str; 3] = ["search", "send_email", "delete_repo"];
const CONDITIONS: [&str; 6] = [
    r#"principal in Workload::"spiffe://prod.example/agent""#,
    "context.hour >= 12",
    r#"context has risk && context.risk == "low""#,
    r#"context has user && context.user == "alice""#,
    r#"context has workload && context.workload like "*agent""#,
    // Fails when evaluated: the policies fail closed.
    "context.hour * 9223372036854775807 > 1",
];

fn generated() -> impl Strategy<Value = Generated> {
    (
        any::<bool>(),
        proptest::option::of((any::<bool>(), 0..3usize)),
        proptest::option::of(0..2usize),
        proptest::option::of(0..3usize),
        proptest::option::weighted(0.4, 0..6usize),
    )
        .prop_map(|(permit, principal, action, tool, condition)| Generated {
            permit,
            principal,
            action,
            tool,
            condition,
        })
}

fn text_of(set: &[Generated]) -> String {
    set.iter()
        .enumerate()
        .map(|(index, policy)| {
            let principal = match policy.principal {
                None => "principal".to_owned(),
                Some((false, u)) => format!("principal == User::\"{}\"", USERS[u]),
                Some((true, w)) => format!("principal in Workload::\"{}\"", WORKLOADS[w % 2]),
            };
            let action = policy.action.map_or("action".to_owned(), |a| {
                format!("action == Action::\"{}\"", ACTIONS[a])
            });
            let resource = match (policy.action, policy.tool) {
                (_, None) => "resource".to_owned(),
                (Some(1), Some(t)) => format!("resource == Skill::\"{}\"", TOOLS[t]),
                (_, Some(t)) => format!("resource == Tool::\"{}\"", TOOLS[t]),
            };
            let condition = policy
                .condition
                .map_or(String::new(), |c| format!(" when {{ {} }}", CONDITIONS[c]));
            let effect = if policy.permit { "permit" } else { "forbid" };
            format!("@id(\"p{index}\") {effect}({principal}, {action}, {resource}){condition};\n")
        })
        .collect()
}

/// What Cedar itself decides over the whole set, with every fact and the full hierarchy.
fn cedar_over_the_whole_set(text: &str, query: &Query) -> (bool, Vec<String>, bool) {
    use cedar_policy::{
        Authorizer, Context, Entities, Entity, EntityUid, PolicySet, Request, RestrictedExpression,
    };
    let uid = |kind: &str, id: &str| -> EntityUid { format!("{kind}::{id:?}").parse().unwrap() };
    let set: PolicySet = text.parse().unwrap();
    let user = uid("User", query.user.as_deref().unwrap());
    let workload = uid("Workload", query.workload.as_deref().unwrap());
    let entities = Entities::from_entities(
        [
            Entity::new_no_attrs(user.clone(), [workload.clone()].into_iter().collect()),
            Entity::new_no_attrs(workload, Default::default()),
        ],
        None,
    )
    .unwrap();
    let mut facts: Vec<(String, RestrictedExpression)> = query
        .facts
        .iter()
        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())))
        .collect();
    facts.push((
        "user".into(),
        RestrictedExpression::new_string(query.user.clone().unwrap()),
    ));
    facts.push((
        "workload".into(),
        RestrictedExpression::new_string(query.workload.clone().unwrap()),
    ));
    facts.push((
        "hour".into(),
        RestrictedExpression::new_long(i64::from(query.at.unwrap().hour())),
    ));
    let kind = match query.resource.kind {
        identity_policy::ResourceType::Skill => "Skill",
        _ => "Tool",
    };
    let request = Request::new(
        user,
        uid("Action", &query.action),
        uid(kind, &query.resource.id),
        Context::from_pairs(facts).unwrap(),
        None,
    )
    .unwrap();
    let response = Authorizer::new().is_authorized(&request, &set, &entities);
    // Cedar numbers the policies of a text `policy0`, ...; the generated ones are `p0`, ....
    let mut reason: Vec<String> = response
        .diagnostics()
        .reason()
        .map(|id| id.to_string().replace("policy", "p"))
        .collect();
    reason.sort();
    let errors = response.diagnostics().errors().next().is_some();
    (
        response.decision() == cedar_policy::Decision::Allow,
        reason,
        errors,
    )
}

proptest! {
    /// Whatever the set and the check, the policies decide as Cedar does over the whole set
    /// with every fact (errors refusing), and name the same policies.
    #[test]
    fn decisions_match_cedar_over_the_whole_set(
        set in proptest::collection::vec(generated(), 0..14),
        user in 0..3usize, workload in 0..2usize, action in 0..2usize, tool in 0..3usize,
        hour in 0..24u8, risk in proptest::option::of(any::<bool>()), permit_required: bool,
    ) {
        let text = text_of(&set);
        let policies = Policies::new(&[PolicySource::new("gen", text.clone())], None).unwrap();
        let resource = if action == 1 { ResourceRef::skill(TOOLS[tool]) } else { ResourceRef::tool(TOOLS[tool]) };
        let mut query = Query::new(ACTIONS[action], resource)
            .user(USERS[user])
            .workload(WORKLOADS[workload])
            .at(at(&format!("2026-11-30T{hour:02}:30:00Z")));
        if let Some(low) = risk {
            query = query.fact("risk", if low { "low" } else { "high" });
        }
        let decision = policies.authorize(&query, permit_required);
        let (allow, reason, errors) = cedar_over_the_whole_set(&text, &query);
        let expected = !errors && (allow || (reason.is_empty() && !permit_required));
        prop_assert_eq!(decision.allowed, expected, "{}", text);
        prop_assert_eq!(!decision.errors.is_empty(), errors);
        prop_assert_eq!(decision.policies, reason);
    }
}
