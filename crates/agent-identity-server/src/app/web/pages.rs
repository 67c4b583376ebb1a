//! The pages, rendered on the server: no script, no build step, every value escaped.

use agent_identity::format_rfc3339;
use agent_identity::identity_approval::{Approval, ApprovalState};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;

/// One provider on the connections page.
pub(crate) struct ProviderRow {
    pub(crate) name: String,
    pub(crate) oauth: bool,
    pub(crate) connected: bool,
    pub(crate) status: Option<String>,
    pub(crate) expires_at: Option<String>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5}nav a,nav form{margin-right:1rem;display:inline}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;\
text-align:left;vertical-align:top}form{display:inline}button{padding:.2rem .8rem}";

/// A page: no script, no framing, nothing loaded from anywhere, no referrer to other origins.
pub(crate) fn page(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " · agent-identity" }
                style { (STYLE) }
            }
            body {
                nav {
                    a href="/ui/" { "agent-identity" }
                    @if let Some(session) = session {
                        a href="/ui/approvals" { "Approvals" }
                        a href="/ui/connections" { "Connections" }
                        form method="post" action="/ui/signout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out " (session.user) }
                        }
                    } @else {
                        a href="/ui/signin" { "Sign in" }
                    }
                }
                h1 { (title) }
                (body)
            }
        }
    };
    respond(status, &markup)
}

/// A page of its own, with no navigation (the connect link's confirmation).
pub(crate) fn standalone(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) }
                style { (STYLE) }
            }
            body { h1 { (title) } (body) }
        }
    };
    respond(status, &markup)
}

/// `markup` with the headers every page has: no script, no framing (a button cannot be
/// clicked through another page), nothing loaded from anywhere, never cached.
fn respond(status: StatusCode, markup: &Markup) -> Response {
    let mut response = (status, markup.clone().into_string()).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it a browser sends the page's own form with `Origin: null`,
        // which the check of its origin refuses. `same-origin` sends nothing to other origins.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The home page.
pub(crate) fn home(session: Option<&Session>) -> Markup {
    html! {
        @if let Some(session) = session {
            p { "Signed in as " strong { (session.user) } "." }
            p { a href="/ui/approvals" { "Calls waiting for approval" } " · "
                a href="/ui/connections" { "Your connections" } }
        } @else {
            p { "Sign in to approve agents' calls and manage your connections." }
            p { a href="/ui/signin" { "Sign in" } }
        }
    }
}

/// A refusal, in words.
pub(crate) fn message(text: &str) -> Markup {
    html! { p { (text) } }
}

/// The approvals page: pending calls with what each would do, then the history.
pub(crate) fn approvals(session: &Session, all: &[Approval]) -> Markup {
    let (pending, done): (Vec<&Approval>, Vec<&Approval>) =
        all.iter().partition(|a| a.state == ApprovalState::Pending);
    html! {
        h2 { "Waiting" }
        @if pending.is_empty() {
            p { "No call is waiting for approval." }
        } @else {
            table {
                tr { th { "Call" } th { "Asked by" } th { "Approvals" } th { "Until" } th {} }
                @for approval in &pending {
                    tr id=(format!("approval-{}", approval.id)) {
                        td { (approval.call.describe()) br; small { "approval " code { (approval.id) } } }
                        td { (approval.requester.as_deref().unwrap_or("—")) }
                        td { (approval.approvals.len()) " of " (approval.demand.required) }
                        td { (format_rfc3339(approval.expires_at)) }
                        td {
                            form method="post" action=(format!("/ui/approvals/{}/approve", approval.id)) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" name="decision" value="approve" { "Approve" }
                            }
                            " "
                            form method="post" action=(format!("/ui/approvals/{}/reject", approval.id)) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" name="decision" value="reject" { "Reject" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "History" }
        table {
            tr { th { "Call" } th { "State" } th { "Decided by" } }
            @for approval in done.iter().take(50) {
                tr id=(format!("approval-{}", approval.id)) {
                    td { (approval.call.describe()) }
                    td class="state" { (state_name(approval.state)) }
                    td {
                        @for vote in &approval.approvals { (vote.by) " " }
                        @if let Some(vote) = &approval.rejection { "rejected by " (vote.by) }
                        @if let Some(vote) = &approval.break_glass {
                            "break-glass by " (vote.by) ": " (vote.note.as_deref().unwrap_or(""))
                        }
                    }
                }
            }
        }
    }
}

fn state_name(state: ApprovalState) -> &'static str {
    match state {
        ApprovalState::Pending => "pending",
        ApprovalState::Granted => "granted",
        ApprovalState::Used => "used",
        ApprovalState::Rejected => "rejected",
        _ => "other",
    }
}

/// The connections page: each provider's status, and connect or disconnect.
pub(crate) fn connections(session: &Session, rows: &[ProviderRow]) -> Markup {
    html! {
        table {
            tr { th { "Provider" } th { "Status" } th {} }
            @for row in rows {
                tr id=(format!("provider-{}", row.name)) {
                    td { (row.name) }
                    td class="status" {
                        @if row.connected {
                            "connected"
                            @if let Some(status) = &row.status { " (" (status) ")" }
                            @if let Some(expires) = &row.expires_at { br; small { "until " (expires) } }
                        } @else { "not connected" }
                    }
                    td {
                        @if row.connected {
                            form method="post" action=(format!("/ui/connections/{}/disconnect", row.name)) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Disconnect" }
                            }
                        } @else if row.oauth {
                            form method="post" action=(format!("/ui/connections/{}/connect", row.name)) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Connect" }
                            }
                        } @else {
                            small { "an API token: store it through the API" }
                        }
                    }
                }
            }
        }
    }
}
