//! The first check of every request: its `Host` and `Origin`, before its body is read.

use std::collections::HashSet;
use std::net::SocketAddr;

use agent_identity::layer::json_error;
use axum::extract::Request;
use axum::response::Response;
use http::{StatusCode, header};

use super::settings::ServerSettings;

/// Refuses requests whose `Host` or `Origin` is not accepted, before reading their body: a
/// browser page on another site must not reach a loopback sidecar through DNS rebinding. An
/// `Origin` is accepted when configured (`allowed_origins`), or when it names the very host
/// the request is sent to (a page of this server's own).
#[derive(Debug)]
pub(crate) struct Guard {
    /// Accepted `Host` values, lower case; `None` accepts any.
    hosts: Option<HashSet<String>>,
    origins: HashSet<String>,
}

impl Guard {
    pub(crate) fn new(settings: &ServerSettings, bound: SocketAddr) -> Self {
        let mut hosts: HashSet<String> = settings
            .allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        // Beyond loopback (0.0.0.0 included) callers authenticate, so a rebinding page has
        // nothing to use; any Host is accepted there unless `allowed_hosts` says otherwise.
        let hosts = if bound.ip().is_loopback() || !hosts.is_empty() {
            let port = bound.port();
            for name in ["127.0.0.1", "localhost", "[::1]"] {
                hosts.insert(format!("{name}:{port}"));
                if port == 80 {
                    hosts.insert(name.to_owned());
                }
            }
            Some(hosts)
        } else {
            None
        };
        let origins = settings
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        Self { hosts, origins }
    }

    /// The refusal of `request`, if its `Host` or `Origin` is not accepted.
    pub(crate) fn refusal(&self, request: &Request) -> Option<Response> {
        if let Some(hosts) = &self.hosts {
            let host = host_of(request.headers(), request.uri());
            let accepted = |host: &str| {
                // Lower-case only when needed: the common Host is lower case already.
                if host.bytes().any(|b| b.is_ascii_uppercase()) {
                    hosts.contains(&host.to_ascii_lowercase())
                } else {
                    hosts.contains(host)
                }
            };
            match host {
                Some(host) if accepted(host) => {}
                Some(_) => {
                    return Some(json_error(
                        StatusCode::FORBIDDEN,
                        "host_not_allowed",
                        "this server does not answer for that Host",
                    ));
                }
                None => {
                    return Some(json_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "the request has no Host header",
                    ));
                }
            }
        }
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let origin = origin
                .to_str()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_ascii_lowercase();
            // A page this server served itself (the connect confirmation's form) is of the
            // origin the request is sent to: the Host check above has vouched for that host.
            if !self.origins.contains(&origin)
                && !names_host(&origin, host_of(request.headers(), request.uri()))
            {
                return Some(json_error(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    "cross-origin requests are not accepted",
                ));
            }
        }
        None
    }
}

/// The host a request was sent to: its `Host`, or under HTTP/2 its `:authority` (which hyper
/// puts in the URI).
pub(crate) fn host_of<'a>(headers: &'a http::HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str))
}

/// True when `origin` (`scheme://host[:port]`) names `host`: a page of the server itself.
pub(crate) fn names_host(origin: &str, host: Option<&str>) -> bool {
    match (origin.split_once("://"), host) {
        (Some((_, authority)), Some(host)) => authority.eq_ignore_ascii_case(host),
        _ => false,
    }
}

/// True when the browser says the request comes from this server's own page: `Sec-Fetch-Site`
/// (sent by every current browser) is `same-origin`, and an `Origin` names the host the
/// request was sent to. A client that sends neither is no browser a page could drive.
pub(crate) fn from_the_page(headers: &http::HeaderMap, uri: &http::Uri) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return false;
    }
    match headers.get(http::header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| names_host(origin, host_of(headers, uri))),
    }
}
