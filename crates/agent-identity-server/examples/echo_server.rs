//! A minimal axum server for the load comparison in `scripts/load.sh`: it answers any POST with
//! its JSON body, read as JSON and written back (`Json<Value>` in, `Json` out), on the same
//! runtime as the sidecar, so that the sidecar's resolve path can be measured against the floor
//! of an axum JSON endpoint that does no work of its own.
//!
//!     cargo run --release -p agent-identity-server --example echo_server -- 127.0.0.1:0
//!
//! It prints `listening address=<address>` on standard error, as the sidecar does.
#![allow(
    clippy::print_stderr,
    reason = "the load script reads the address from stderr"
)]

use axum::Json;
use serde_json::Value;

async fn echo(Json(body): Json<Value>) -> Json<Value> {
    Json(body)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("listening address={}", listener.local_addr()?);
    let app = axum::Router::new().fallback(axum::routing::post(echo));
    axum::serve(listener, app).await
}
