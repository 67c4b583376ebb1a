//! A real browser for tests of the sidecar's pages: Debian's headless Chromium, driven by
//! playwright-core scripts in `fixtures/browser`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/browser")
}

/// Runs `fixtures/browser/<script>` in Node with `env` and gives what it printed last, as JSON.
/// The script drives Chromium (`CHROMIUM`, `/usr/bin/chromium` by default) and prints one JSON
/// object of what it saw.
///
/// ```no_run
/// # async fn example() {
/// let seen = identity_test_support::browse("connect.mjs", &[("LINK", "http://127.0.0.1:3001/...")]).await;
/// println!("{}", seen["confirmation"]);
/// # }
/// ```
pub async fn browse(script: &str, env: &[(&str, &str)]) -> Value {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules: run `npm ci` there (scripts/test.sh does)",
        dir.display()
    );
    let run = Command::new("node")
        .arg(script)
        .envs(env.iter().copied())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser script finished within 90 s")
        .expect("node starts (Node.js 20 or later is needed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|err| panic!("{script} printed no JSON ({err}): {stdout}"))
}
