//! A minimal hyper server for the proxy's load comparison in `scripts/proxy-load.sh`: it
//! answers every request with the same 1 KiB of JSON, and does nothing else (no router, no
//! middleware), so that the direct run measures the floor the proxies add to. `/events` is a
//! stream of 100 server-sent events, one every 5 ms, the first at once (the streaming figure).
//!
//!     cargo run --release -p agent-identity-server --example json_upstream -- 127.0.0.1:0
//!
//! It prints `listening address=<address>` on standard error, as the sidecar does.
#![allow(
    clippy::print_stderr,
    reason = "the load script reads the address from stderr"
)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// 1 KiB of JSON: a list of items, padded to exactly 1,024 bytes.
fn answer() -> Bytes {
    let mut json = String::from("{\"items\":[");
    let mut index = 0;
    while json.len() < 1_000 {
        if index > 0 {
            json.push(',');
        }
        json.push_str(&format!("{{\"id\":{index},\"name\":\"item-{index}\"}}"));
        index += 1;
    }
    json.push_str("],\"pad\":\"");
    while json.len() < 1_022 {
        json.push('x');
    }
    json.push_str("\"}");
    json.truncate(1_024);
    Bytes::from(json)
}

/// 100 events, the first at once, then one every 5 ms.
fn events() -> http_body_util::combinators::BoxBody<Bytes, Infallible> {
    let events = futures::stream::iter(0..100).then(|index| async move {
        if index > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(format!(
            "data: {{\"event\":{index}}}\n\n"
        ))))
    });
    BodyExt::boxed(StreamBody::new(events))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("listening address={}", listener.local_addr()?);
    let body = answer();
    loop {
        let (stream, _) = listener.accept().await?;
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    let response = if request.uri().path() == "/events" {
                        hyper::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(events())
                    } else {
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(body).boxed())
                    };
                    Ok::<_, Infallible>(response.unwrap_or_default())
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
