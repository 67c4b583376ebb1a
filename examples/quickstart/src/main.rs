//! Loads the reference's JSON credentials and rules, then resolves and explains a few contexts.
//!
//! `cargo run -p agent-identity-quickstart`

use agent_identity::{
    MemoryCredentialStore, RequestContext, ResourceKind, Router, Secret, parse_credentials_json,
    parse_rules_json,
};

const CREDENTIALS: &str = include_str!("../credentials.json");
const RULES: &str = include_str!("../rules.json");

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The reference's JSON carries no secrets; attach each one where it comes from.
    let credentials = parse_credentials_json(CREDENTIALS)?.into_iter().map(|c| {
        let secret = Secret::new(format!("demo-secret-for-{}", c.id));
        c.with_secret(secret)
    });
    let router = Router::builder()
        .default_store(MemoryCredentialStore::from_credentials(credentials)?)
        .rules(parse_rules_json(RULES)?)
        .build()?;

    let requests = [
        ("user-alice", ResourceKind::Personal, "read"),
        ("user-bob", ResourceKind::Shared, "read"),
        ("user-bob", ResourceKind::Shared, "write"),
        ("user-bob", ResourceKind::Personal, "read"),
    ];
    for (user, kind, action) in requests {
        let ctx = RequestContext::builder()
            .user_id(user)
            .resource_id("crm")
            .resource_kind(kind)
            .provider("openai")
            .model("gpt-4o")
            .action(action)
            .trace_id(format!("trace-{user}-{action}"))
            .build()?;
        let line = match router.resolve(&ctx).await {
            Ok(r) => format!(
                "granted {} to {} by rule {}",
                r.credential_id, r.resolved_for, r.rule_id
            ),
            Err(denial) => format!("denied: {denial}"),
        };
        report(&format!("{user} {action} {kind}: {line}"));
    }
    Ok(())
}

#[allow(clippy::print_stdout, reason = "an example reports on standard output")]
fn report(line: &str) {
    println!("{line}");
}
