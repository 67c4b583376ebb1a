//! The one HTTP client: built once per policy, TLS provider installed once, every answer read
//! within the policy's limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use identity_core::Error;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::{Map, Value};
use url::Url;

use crate::BACKEND;
use crate::policy::OutboundPolicy;

/// Installs the process's TLS provider (rustls with ring) unless the application chose one.
/// Every HTTPS client of this workspace is built after this call; it is the only place a
/// provider is installed.
///
/// ```
/// identity_http::install_tls_provider();
/// assert!(rustls::crypto::CryptoProvider::get_default().is_some());
/// ```
pub fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Resolves names and keeps only the addresses the policy allows, so that the check holds for
/// the address actually connected to.
#[derive(Debug)]
struct GuardedResolver(OutboundPolicy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| policy.check_ip(addr.ip()).is_ok())
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no address the policy allows").into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// An answer, read within the policy's limits.
///
/// ```
/// let answer = identity_http::Answer::new(200, None, br#"{"a":1}"#.to_vec());
/// assert_eq!(answer.json_object("test")?["a"], 1);
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, when it was a number of seconds.
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// An answer from its parts (what a test or a fake transport builds).
    ///
    /// ```
    /// let answer = identity_http::Answer::new(503, Some(std::time::Duration::from_secs(2)), Vec::new());
    /// ```
    pub fn new(status: u16, retry_after: Option<Duration>, body: Vec<u8>) -> Self {
        Self {
            status,
            retry_after,
            body,
        }
    }

    /// The body as a JSON object, or a protocol error naming `what`.
    ///
    /// ```
    /// let answer = identity_http::Answer::new(200, None, b"[]".to_vec());
    /// assert!(answer.json_object("metadata").is_err());
    /// ```
    pub fn json_object(&self, what: &str) -> Result<Map<String, Value>, Error> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(object)) => Ok(object),
            _ => Err(Error::Protocol {
                backend: BACKEND,
                code: "invalid_response".into(),
                description: Some(format!("{what}: the answer is not a JSON object")),
            }),
        }
    }
}

/// `Retry-After` as a number of seconds (the HTTP-date form is not used by the servers this
/// talks to and counts as absent), capped at ten minutes.
pub(crate) fn retry_after_seconds(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(600)))
}

/// The HTTP client every outbound call of this workspace goes through, under one
/// [`OutboundPolicy`]: addresses checked at connect time, no redirects, no proxy unless the
/// policy names one, connect and total timeouts, a streaming cap on every body. Cheap to
/// clone (the connection pool is shared).
///
/// ```
/// let http = identity_http::HttpClient::new(identity_http::OutboundPolicy::default())?;
/// assert!(http.policy().check_url("https://as.example.com", "issuer").is_ok());
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: OutboundPolicy,
}

impl HttpClient {
    /// A client following `policy`.
    ///
    /// ```
    /// let http = identity_http::HttpClient::new(identity_http::OutboundPolicy::default().allow_http_loopback(true))?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(policy: OutboundPolicy) -> Result<Self, Error> {
        install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            // Idle connections are closed before the usual 5 s keep-alive of servers runs out,
            // so that a request is never written on a connection the server is closing.
            .pool_idle_timeout(Duration::from_secs(4))
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())));
        builder = match policy.idle_timeout {
            Some(idle) => builder.read_timeout(idle),
            None => builder.timeout(policy.timeout),
        };
        builder = match &policy.proxy {
            Some(proxy) => builder.proxy(
                reqwest::Proxy::all(proxy.as_str())
                    .map_err(|_| Error::unavailable(BACKEND, "the proxy URL is not usable"))?,
            ),
            // Without this, reqwest honours HTTPS_PROXY and friends from the environment.
            None => builder.no_proxy(),
        };
        let client = builder
            .build()
            .map_err(|_| Error::unavailable(BACKEND, "the HTTP client could not be built"))?;
        Ok(Self { client, policy })
    }

    /// The policy.
    ///
    /// ```
    /// let http = identity_http::HttpClient::new(identity_http::OutboundPolicy::default())?;
    /// assert!(!http.policy().allows_http_loopback());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// The client underneath, for a library that sends with a `reqwest::Client` of its own
    /// making (an MCP transport): its requests keep the policy's resolver check, timeouts
    /// and refused redirects, but a literal address in a URL is checked only by
    /// [`OutboundPolicy::check_url`], which the caller runs first.
    ///
    /// ```
    /// let http = identity_http::HttpClient::new(identity_http::OutboundPolicy::default())?;
    /// let _client: &reqwest::Client = http.reqwest();
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// A request builder for `method` on `url` (checked already).
    ///
    /// ```
    /// let http = identity_http::HttpClient::new(identity_http::OutboundPolicy::default())?;
    /// let url = http.policy().check_url("https://api.example.com/user", "user endpoint")?;
    /// let request = http.request(reqwest::Method::GET, &url);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn request(&self, method: reqwest::Method, url: &Url) -> reqwest::RequestBuilder {
        self.client.request(method, url.clone())
    }

    /// Sends `request` and reads at most the policy's body size as it streams. `what` names the
    /// call in errors. The URL is checked against the policy here, whatever checked it before
    /// (a literal address never reaches the resolver's check); a 3xx is refused: redirects are
    /// never followed. Transport failures are [`Error::Unavailable`]; the URL is in no error.
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient, url: url::Url) -> Result<(), identity_core::Error> {
    /// let answer = http.send(http.request(reqwest::Method::GET, &url), "userinfo").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Answer, Error> {
        let unavailable = |detail: &str| Error::unavailable(BACKEND, format!("{what}: {detail}"));
        let mut response = self.stream(request, what).await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after_seconds);
        let max = self.policy.max_body;
        if response
            .content_length()
            .is_some_and(|length| length > max as u64)
        {
            return Err(too_large(what, max));
        }
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|err| {
                if err.is_timeout() {
                    unavailable("timed out while reading the answer")
                } else {
                    unavailable("the answer could not be read")
                }
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > max {
                return Err(too_large(what, max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// Sends `request` and hands back the answer as it arrives, its body unread: for a proxy,
    /// which streams it on. The URL is checked against the policy as in [`send`](Self::send),
    /// and a redirect is refused the same way. A transport failure is
    /// [`Error::Unavailable`] whose source is the `reqwest::Error` (to tell a timeout from a
    /// refused connection); the URL is in no error.
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient, url: url::Url) -> Result<(), identity_core::Error> {
    /// let response = http.stream(http.request(reqwest::Method::GET, &url), "upstream").await?;
    /// # Ok(()) }
    /// ```
    pub async fn stream(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, Error> {
        let request = request.build().map_err(|_| {
            Error::unavailable(BACKEND, format!("{what}: the request could not be built"))
        })?;
        self.policy.check_url(request.url().as_str(), what)?;
        let response = self.client.execute(request).await.map_err(|err| {
            let detail = if err.is_timeout() {
                "timed out"
            } else if err.is_connect() {
                "could not connect (or the address is not allowed)"
            } else {
                "the request failed"
            };
            Error::Unavailable {
                backend: BACKEND,
                detail: format!("{what}: {detail}"),
                source: Some(Box::new(err.without_url())),
            }
        })?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(Error::Protocol {
                backend: BACKEND,
                code: "redirect_refused".into(),
                description: Some(format!(
                    "{what}: answered a redirect ({status}), not followed"
                )),
            });
        }
        Ok(response)
    }

    /// GETs `url` asking for JSON.
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient, url: url::Url) -> Result<(), identity_core::Error> {
    /// let answer = http.get_json(&url, "metadata").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_json(&self, url: &Url, what: &str) -> Result<Answer, Error> {
        let request = self
            .request(reqwest::Method::GET, url)
            .header("accept", "application/json");
        self.send(request, what).await
    }
}

fn too_large(what: &str, max: usize) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: "response_too_large".into(),
        description: Some(format!("{what}: the answer is larger than {max} bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_capped_at_ten_minutes() {
        assert_eq!(retry_after_seconds(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(retry_after_seconds("99999"), Some(Duration::from_secs(600)));
        assert_eq!(retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT"), None);
        assert_eq!(retry_after_seconds("-1"), None);
    }
}
