//! HTTP for everything discovered at run time: what a URL may be, where it may lead, how much of
//! an answer is read, and for how long.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use identity_core::Error;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::Value;
use url::{Host, Url};

use crate::BACKEND;

/// What the client may reach when it follows URLs that servers gave it.
///
/// The defaults are for production: HTTPS only, public addresses only, no redirects, answers of
/// at most 1 MiB, 10 s per request. A malicious authorization server or resource can then make
/// the client fail, and nothing else: no request to an internal address (checked on every
/// resolved address, so DNS cannot rebind around it), no `javascript:`, `file:` or shell-looking
/// endpoint, no unbounded read.
///
/// ```
/// use std::time::Duration;
/// let policy = identity_dcr::FetchPolicy::default()
///     .allow_http_loopback(true)
///     .timeout(Duration::from_secs(5));
/// assert!(policy.check_url("http://127.0.0.1:8080/reg", "registration_endpoint").is_ok());
/// assert!(policy.check_url("javascript:alert(1)", "registration_endpoint").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    allow_http_loopback: bool,
    allow_private: bool,
    max_body: usize,
    timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_http_loopback: false,
            allow_private: false,
            max_body: 1024 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

impl FetchPolicy {
    /// Allow plain HTTP, and only to loopback addresses (local servers, tests). Off by default.
    ///
    /// ```
    /// let policy = identity_dcr::FetchPolicy::default();
    /// assert!(policy.check_url("http://127.0.0.1/x", "issuer").is_err());
    /// ```
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// Allow private, link-local and other non-public addresses (an authorization server inside
    /// a private network). Off by default; cloud metadata addresses are link-local or private and
    /// are refused with them.
    ///
    /// ```
    /// let policy = identity_dcr::FetchPolicy::default().allow_private(true);
    /// assert!(policy.check_url("https://10.0.0.7/token", "token_endpoint").is_ok());
    /// ```
    pub fn allow_private(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }

    /// The largest answer read, in bytes (1 MiB).
    ///
    /// ```
    /// let policy = identity_dcr::FetchPolicy::default().max_body(64 * 1024);
    /// ```
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The longest one request may take, the answer's body included (10 s).
    ///
    /// ```
    /// let policy = identity_dcr::FetchPolicy::default().timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks a URL a server gave (`what` names the field): an absolute `https` URL (or `http`
    /// to loopback when allowed), with a host, no user info, no fragment, and not a literal
    /// address that is refused.
    ///
    /// ```
    /// let policy = identity_dcr::FetchPolicy::default();
    /// assert!(policy.check_url("https://as.example.com/reg", "registration_endpoint").is_ok());
    /// for bad in ["file:///etc/passwd", "https://169.254.169.254/latest", "$(curl evil)", "https://u:p@as.example.com/"] {
    ///     assert!(policy.check_url(bad, "token_endpoint").is_err(), "{bad}");
    /// }
    /// ```
    pub fn check_url(&self, text: &str, what: &str) -> Result<Url, Error> {
        let refuse = |problem: &str| unsafe_url(what, problem);
        let url = Url::parse(text).map_err(|_| refuse("is not an absolute URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(refuse("is not an http(s) URL"));
        }
        let host = url.host().ok_or_else(|| refuse("has no host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("carries user information"));
        }
        if url.fragment().is_some() {
            return Err(refuse("has a fragment"));
        }
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http_loopback => {
                let loopback = match (literal, &host) {
                    (Some(ip), _) => ip.is_loopback(),
                    (None, Host::Domain(name)) => *name == "localhost",
                    _ => false,
                };
                if !loopback {
                    return Err(refuse("uses plain http to an address that is not loopback"));
                }
            }
            "http" => return Err(refuse("uses plain http; only https is allowed")),
            _ => return Err(refuse("is not an http(s) URL")),
        }
        if let Some(ip) = literal
            && let Err(problem) = self.check_ip(ip)
        {
            return Err(refuse(problem));
        }
        Ok(url)
    }

    /// Whether the client may connect to `ip`.
    fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return if self.allow_http_loopback || self.allow_private {
                Ok(())
            } else {
                Err("is a loopback address")
            };
        }
        if !self.allow_private && !is_public(ip) {
            return Err("is a private, link-local or otherwise non-public address");
        }
        Ok(())
    }
}

/// True for addresses on the public internet: not private, shared (CGNAT), link-local (cloud
/// metadata at 169.254.169.254 among them), unique-local (`fd00:ec2::254`), unspecified,
/// broadcast, multicast or documentation ranges.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

fn unsafe_url(what: &str, problem: &str) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: "unsafe_url".into(),
        description: Some(format!("`{what}` {problem}")),
    }
}

/// Resolves names and keeps only the addresses the policy allows, so that the check holds for
/// the address actually connected to.
#[derive(Debug)]
struct GuardedResolver(FetchPolicy);

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
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, or a protocol error naming `what`.
    pub(crate) fn json(&self, what: &str) -> Result<Value, Error> {
        serde_json::from_slice(&self.body).map_err(|_| Error::Protocol {
            backend: BACKEND,
            code: "invalid_response".into(),
            description: Some(format!("{what}: the answer is not JSON")),
        })
    }
}

/// An HTTP client that follows the policy.
#[derive(Debug, Clone)]
pub(crate) struct SafeHttp {
    client: reqwest::Client,
    pub(crate) policy: FetchPolicy,
}

impl SafeHttp {
    pub(crate) fn new(policy: FetchPolicy) -> Result<Self, Error> {
        // reqwest is built without a bundled TLS provider; fails only when one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
            .build()
            .map_err(|_| Error::unavailable(BACKEND, "the HTTP client could not be built"))?;
        Ok(Self { client, policy })
    }

    /// A request builder for `method` on `url` (checked already).
    pub(crate) fn request(&self, method: reqwest::Method, url: &Url) -> reqwest::RequestBuilder {
        self.client.request(method, url.clone())
    }

    /// Sends `request` (to a URL already checked) and reads at most the policy's body size.
    /// `what` names the call in errors. A 3xx is refused: redirects are never followed.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Answer, Error> {
        let unavailable = |detail: &str| Error::unavailable(BACKEND, format!("{what}: {detail}"));
        let mut response = request.send().await.map_err(|err| {
            if err.is_timeout() {
                unavailable("timed out")
            } else if err.is_connect() {
                unavailable("could not connect (or the address is not allowed)")
            } else {
                unavailable("the request failed")
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
        if response
            .content_length()
            .is_some_and(|length| length > self.policy.max_body as u64)
        {
            return Err(too_large(what, self.policy.max_body));
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
            if body.len() + chunk.len() > self.policy.max_body {
                return Err(too_large(what, self.policy.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }

    /// GETs `url` as JSON: checked, sent, 200 required.
    pub(crate) async fn get_json(&self, url: &Url, what: &str) -> Result<Answer, Error> {
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
    fn addresses_are_classified() {
        let policy = FetchPolicy::default();
        for refused in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                policy.check_ip(refused.parse().unwrap()).is_err(),
                "{refused}"
            );
        }
        for allowed in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(
                policy.check_ip(allowed.parse().unwrap()).is_ok(),
                "{allowed}"
            );
        }
        let loopback = FetchPolicy::default().allow_http_loopback(true);
        assert!(loopback.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(loopback.check_ip("10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn urls_from_servers_are_checked() {
        let policy = FetchPolicy::default().allow_http_loopback(true);
        for (bad, says) in [
            ("javascript:alert(1)", "http(s)"),
            ("file:///etc/passwd", "http(s)"),
            ("$(touch /tmp/pwned)", "absolute URL"),
            ("open -a Calculator", "absolute URL"),
            ("http://example.com/token", "not loopback"),
            ("https://10.0.0.1/token", "non-public"),
            ("https://[fe80::1]/token", "non-public"),
            ("https://user:pw@as.example.com/", "user information"),
        ] {
            let err = policy
                .check_url(bad, "token_endpoint")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(says) && err.contains("token_endpoint"),
                "{bad}: {err}"
            );
        }
        assert!(
            policy
                .check_url("http://localhost:8080/x", "issuer")
                .is_ok()
        );
    }
}
