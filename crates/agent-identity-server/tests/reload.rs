//! Hot reload of the `agent-identity` process: on SIGHUP, on `POST /api/reload` and when the
//! file changes, under load, with broken files refused and what memory keeps kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

mod support;
use support::{Sidecar, write_config};

fn key_of(name: &str) -> String {
    format!("the-api-key-of-{name}-0123456789")
}

/// A configuration whose one rule grants `credential`, with `extra` at the top level.
fn config(credential: &str, watch_ms: u64, extra: &str) -> String {
    format!(
        r#"{extra}
[server]
listen = "127.0.0.1:0"
reload_watch_ms = {watch_ms}

[stores.default]
type = "memory"
credentials = [
    {{ id = "cred-1", kind = "fixed", name = "One", scope = "read", status = "active", ref = "slot-1" }},
    {{ id = "cred-2", kind = "fixed", name = "Two", scope = "read", status = "active", ref = "slot-2" }},
]
secrets = {{ slot-1 = {{ env = "SECRET_ONE" }}, slot-2 = {{ env = "SECRET_TWO" }} }}

[[rules]]
id = "the-rule"
credentialRef = "{credential}"
priority = 1

[auth]
mode = "api-key"

[[auth.api_keys]]
name = "agent"
env = "AGENT_KEY"
any_user = true

[[auth.api_keys]]
name = "ops"
env = "OPS_KEY"
any_user = true
permissions = ["reload"]
"#
    )
}

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("SECRET_ONE", "secret-one-0123".into()),
        ("SECRET_TWO", "secret-two-0123".into()),
        ("AGENT_KEY", key_of("agent")),
        ("OPS_KEY", key_of("ops")),
    ]
}

async fn start(path: &Path) -> Sidecar {
    let env = env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Sidecar::serve(path, &env).await
}

fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(identity_test_support::http_client)
}

/// One resolution: the status and the credential granted (empty when none).
async fn resolve(base: &str) -> Result<(StatusCode, String), reqwest::Error> {
    let body = json!({"userId": "alice", "resourceId": "r", "resourceKind": "shared",
        "provider": "p", "model": "m", "action": "read", "traceId": "t"});
    let response = client()
        .post(format!("{base}/api/resolve"))
        .header("x-api-key", key_of("agent"))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((
        status,
        body["credentialId"].as_str().unwrap_or_default().to_owned(),
    ))
}

async fn metric(base: &str, name: &str) -> String {
    let text = client()
        .get(format!("{base}/metrics"))
        .header("x-api-key", key_of("agent"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with(name))
        .collect::<Vec<_>>()
        .join("\n")
}

fn signal_hangup(sidecar: &Sidecar) {
    let pid = sidecar.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Waits until configuration `generation` is in force.
async fn until_generation(base: &str, generation: u64) {
    let wanted = format!("agent_identity_config_generation {generation}");
    for _ in 0..400 {
        if metric(base, "agent_identity_config_generation")
            .await
            .contains(&wanted)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("generation {generation} never came");
}

/// Waits until `sidecar` has logged `text`.
async fn until_logged(sidecar: &Sidecar, text: &str) {
    for _ in 0..400 {
        if sidecar.log.lock().unwrap().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never logged: {text}");
}

/// Waits until resolutions grant `credential`; how long that took.
async fn until_granted(base: &str, credential: &str) -> Duration {
    let started = Instant::now();
    for _ in 0..400 {
        if resolve(base).await.unwrap().1 == credential {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{credential} was never granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_change_on_sighup_takes_effect_under_load_without_a_dropped_request() {
    let path = write_config("reload-load", &config("slot-1", 0, ""));
    let sidecar = start(&path).await;
    let base = format!("http://{}", sidecar.address);
    assert_eq!(resolve(&base).await.unwrap().1, "cred-1");

    // Four callers resolve without pause; each keeps what it was granted, in order.
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (base, stop) = (base.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(resolve(&base).await);
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&path, config("slot-2", 0, "")).unwrap();
    signal_hangup(&sidecar);
    let took = until_granted(&base, "cred-2").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut answered = 0;
    for caller in callers {
        let seen = caller.await.unwrap();
        // Not one request failed, and once a caller was granted the new credential, it was
        // never granted the old one again: the swap is one instant for everyone.
        let mut switched = false;
        for answer in &seen {
            let (status, credential) = answer.as_ref().expect("a request was dropped");
            assert_eq!(*status, StatusCode::OK);
            match credential.as_str() {
                "cred-1" => assert!(!switched, "the old rule came back"),
                "cred-2" => switched = true,
                other => panic!("{other}"),
            }
        }
        assert!(switched);
        answered += seen.len();
    }
    assert!(answered > 8, "{answered}");
    assert!(
        metric(&base, "agent_identity_config_generation")
            .await
            .contains("agent_identity_config_generation 2"),
    );
    until_logged(&sidecar, "configuration reloaded").await;
    until_logged(&sidecar, "trigger=signal").await;
    eprintln!("a SIGHUP reload took effect {took:?} after the signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_refused_and_the_old_rules_keep_serving() {
    let path = write_config("reload-broken", &config("slot-1", 0, ""));
    let sidecar = start(&path).await;
    let base = format!("http://{}", sidecar.address);

    // A rule naming a store that does not exist, and then a file that is not TOML.
    for broken in [
        config("slot-2", 0, "").replace("priority = 1", "priority = 1\nstore = \"nowhere\""),
        "[[rules]\nid =".to_owned(),
    ] {
        std::fs::write(&path, broken).unwrap();
        let answer = client()
            .post(format!("{base}/api/reload"))
            .header("x-api-key", key_of("ops"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "invalid_configuration", "{body}");
        assert!(!body["errors"].as_array().unwrap().is_empty(), "{body}");
        for _ in 0..20 {
            assert_eq!(
                resolve(&base).await.unwrap(),
                (StatusCode::OK, "cred-1".to_owned())
            );
        }
    }
    // On a signal too: refused, and said so in the log.
    signal_hangup(&sidecar);
    until_logged(&sidecar, "trigger=signal").await;
    let log = sidecar.log.lock().unwrap().clone();
    assert!(log.contains("configuration reload refused"), "{log}");
    assert!(log.contains("nowhere"), "{log}");
    assert_eq!(resolve(&base).await.unwrap().1, "cred-1");
    assert!(
        metric(&base, "agent_identity_config_generation")
            .await
            .contains("agent_identity_config_generation 1")
    );
    let reloads = metric(&base, "agent_identity_config_reloads_total").await;
    assert!(reloads.contains(r#"outcome="refused"} 3"#), "{reloads}");

    // Reloading needs its permission; a good file then goes in.
    std::fs::write(&path, config("slot-2", 0, "")).unwrap();
    let refused = client()
        .post(format!("{base}/api/reload"))
        .header("x-api-key", key_of("agent"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let answer = client()
        .post(format!("{base}/api/reload"))
        .header("x-api-key", key_of("ops"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.json::<Value>().await.unwrap()["generation"], 2);
    assert_eq!(resolve(&base).await.unwrap().1, "cred-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_reloaded_by_itself() {
    let path = write_config("reload-watch", &config("slot-1", 100, ""));
    let sidecar = start(&path).await;
    let base = format!("http://{}", sidecar.address);
    assert_eq!(resolve(&base).await.unwrap().1, "cred-1");
    std::fs::write(&path, config("slot-2", 100, "")).unwrap();
    let took = until_granted(&base, "cred-2").await;
    // (the log line follows the swap, through the log's own thread)
    until_logged(&sidecar, "trigger=file").await;
    eprintln!("a file change took effect {took:?} after the write (checked every 100 ms)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_memory_keeps_outlives_a_reload() {
    // A budget of three per hour, counted in memory: two spent before the reload count after.
    let budget =
        "\n[[budgets]]\nid = \"three\"\nper = \"user\"\nrequests = 3\nwindow_secs = 3600\n";
    let with_budget = |credential: &str| format!("{}{budget}", config(credential, 0, ""));
    let path = write_config("reload-memory", &with_budget("slot-1"));
    let sidecar = start(&path).await;
    let base = format!("http://{}", sidecar.address);
    for _ in 0..2 {
        assert_eq!(resolve(&base).await.unwrap().0, StatusCode::OK);
    }
    std::fs::write(&path, with_budget("slot-2")).unwrap();
    signal_hangup(&sidecar);
    until_generation(&base, 2).await;
    // The new rule grants the third; the fourth is refused.
    assert_eq!(
        resolve(&base).await.unwrap(),
        (StatusCode::OK, "cred-2".to_owned())
    );
    let (status, _) = resolve(&base).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_cannot_drop_authentication_beyond_loopback() {
    // Started beyond loopback by `--listen`, with API keys; the file's own address is loopback.
    let path = write_config("reload-exposure", &config("slot-1", 0, ""));
    let env = env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sidecar = Sidecar::start(
        &[
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ],
        &env,
    )
    .await;
    let base = format!("http://127.0.0.1:{}", sidecar.port());
    // The edit would leave the port open to anyone: refused, and the keys still required.
    let open = config("slot-2", 0, "")
        .split("[auth]")
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(&path, open).unwrap();
    let answer = client()
        .post(format!("{base}/api/reload"))
        .header("x-api-key", key_of("ops"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = answer.json().await.unwrap();
    assert!(body["errors"].to_string().contains("listen"), "{body}");
    let anonymous = client()
        .post(format!("{base}/api/resolve"))
        .json(
            &json!({"userId": "alice", "resourceId": "r", "resourceKind": "shared",
            "provider": "p", "model": "m", "action": "read", "traceId": "t"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resolve(&base).await.unwrap().1, "cred-1");
}
