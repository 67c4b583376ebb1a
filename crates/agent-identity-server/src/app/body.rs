//! Request bodies: JSON only, bounded, read before anything is parsed.

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use http::request::Parts;
use http::{StatusCode, header};
use http_body_util::BodyExt;

use super::resolve::ApiError;

/// The most of a refused body read and discarded before the refusal is sent.
const DRAIN_BYTES: u64 = 1024 * 1024;
/// The longest spent discarding a refused body.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads and discards what remains of `body`, up to [`DRAIN_BYTES`] and [`DRAIN_TIME`]. A client
/// that sends its whole body before reading the answer (Python's `http.client`, `requests`, the
/// reference's own client) would otherwise find the connection reset, its unread bytes still in
/// the server's buffer, and never see the refusal: this is nginx's lingering close, bounded.
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut seen = 0u64;
        while seen <= DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |data| data.len() as u64);
                }
                _ => break,
            }
        }
    })
    .await;
}

/// True for `application/json` and `application/<anything>+json`, parameters and case aside.
pub(crate) fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .as_bytes();
    let starts = |prefix: &[u8]| {
        essence.len() >= prefix.len() && essence[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let ends = |suffix: &[u8]| {
        essence.len() >= suffix.len()
            && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    essence.eq_ignore_ascii_case(b"application/json") || (starts(b"application/") && ends(b"+json"))
}

/// Reads a JSON body of at most `limit` bytes (parsing it is the caller's part).
pub(crate) async fn read_json_body(
    parts: &Parts,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE)
        && !is_json(content_type.to_str().unwrap_or(""))
    {
        drain(body).await;
        return Err(ApiError::Body {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "the body must be JSON (Content-Type: application/json)".into(),
        });
    }
    let too_large = || ApiError::Body {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "body_too_large",
        message: format!("the body is larger than {limit} bytes"),
    };
    if let Some(length) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > limit as u64
    {
        if !body.is_end_stream() {
            drain(body).await;
        }
        return Err(too_large());
    }
    let mut body = body;
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ApiError::Body {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                message: "the body could not be read".into(),
            });
        };
        if let Some(data) = frame.data_ref() {
            if read.len() + data.len() > limit {
                drain(body).await;
                return Err(too_large());
            }
            read.extend_from_slice(data);
        }
    }
    let bytes = Bytes::from(read);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Body {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: "the body is empty; send a JSON object".into(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/vnd.api+json ",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "json",
            "",
            "application/jsonx",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }
}
