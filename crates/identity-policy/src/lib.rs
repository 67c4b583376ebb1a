//! Permission policies for agent-identity, in Cedar (the engine AWS's and Volcengine's agent
//! identity services use): whether this agent may make this call for this user now.
//!
//! [`Policies`] are read from Cedar files and checked against a schema ([`DEFAULT_SCHEMA`] by
//! default). A [`Query`] names the principal (a user, inside the workload acting for them),
//! the action (`resolve`, `deliver`, `proxy`, `connect`, `call-tool`, `use-skill`), the
//! resource and the request's facts; [`Policies::authorize`] answers with a [`Decision`] that
//! names the policies that decided. A policy that forbids always refuses, and so does a policy
//! that cannot be evaluated: the policies fail closed. [`PolicyGate`] asks them about every
//! grant of a router.
//!
//! ```
//! use identity_policy::{Policies, PolicySource, Query, ResourceRef};
//! let policies = Policies::new(&[PolicySource::new("agents.cedar", r#"
//!     @id("agents-send-mail")
//!     permit(principal in Workload::"spiffe://prod.example/mailer", action == Action::"call-tool",
//!            resource == Tool::"send_email");
//!     @id("not-at-night")
//!     forbid(principal, action, resource) when { context.hour < 6 };
//! "#)], None)?;
//! let noon = identity_core::parse_rfc3339("2026-11-30T12:00:00Z").unwrap();
//! let query = Query::new("call-tool", ResourceRef::tool("send_email"))
//!     .user("alice").workload("spiffe://prod.example/mailer").at(noon);
//! assert!(policies.authorize(&query, true).allowed);
//! let night = identity_core::parse_rfc3339("2026-11-30T03:00:00Z").unwrap();
//! let decision = policies.authorize(&query.clone().at(night), true);
//! assert!(!decision.allowed);
//! assert_eq!(decision.policies, ["not-at-night"]);
//! # Ok::<(), identity_policy::PolicyError>(())
//! ```

mod gate;
mod plan;
mod policies;
mod query;

pub use gate::PolicyGate;
pub use policies::{DEFAULT_SCHEMA, Decision, Policies, PolicyError, PolicyProblem, PolicySource};
pub use query::{Query, ResourceRef, ResourceType};
