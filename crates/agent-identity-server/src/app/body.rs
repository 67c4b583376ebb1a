//! Request bodies: JSON only, bounded, read before anything is parsed.

use axum::body::{Body, Bytes};
use http::request::Parts;
use http::{StatusCode, header};

use super::resolve::ApiError;

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
        return Err(too_large());
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let over = std::error::Error::source(&err)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            return Err(if over {
                too_large()
            } else {
                ApiError::Body {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid_request",
                    message: "the body could not be read".into(),
                }
            });
        }
    };
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
