//! What an outbound call may reach: schemes, addresses, sizes and times.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use identity_core::Error;
use url::{Host, Url};

use crate::BACKEND;

/// What the client may reach, and how much of it it reads.
///
/// The defaults are for production: HTTPS only, public addresses only, no redirects, answers of
/// at most 1 MiB, 3 s to connect and 10 s per request, no proxy (a proxy named in the
/// environment, `HTTPS_PROXY` and the like, is ignored: it would resolve host names where no
/// address check runs). A malicious authorization server or resource can then make a call fail,
/// and nothing else: no request to an internal address (checked on every address actually
/// connected to, so DNS cannot rebind around it), no `javascript:`, `file:` or shell-looking
/// endpoint, no unbounded read, no endless wait.
///
/// Refused unless [`allow_private`](OutboundPolicy::allow_private): loopback, private
/// (RFC 1918), shared (CGNAT, `100.64.0.0/10`), link-local (cloud metadata at
/// `169.254.169.254`), `192.0.0.0/24`, benchmarking, documentation, reserved, unique-local
/// (`fd00:ec2::254`), site-local (`fec0::/10`), and the IPv6 forms that carry an IPv4 address
/// (mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, IPv4-compatible `::/96`, Teredo).
///
/// ```
/// use std::time::Duration;
/// let policy = identity_http::OutboundPolicy::default()
///     .allow_http_loopback(true)
///     .timeout(Duration::from_secs(5));
/// assert!(policy.check_url("http://127.0.0.1:8080/reg", "registration_endpoint").is_ok());
/// assert!(policy.check_url("javascript:alert(1)", "registration_endpoint").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    pub(crate) allow_http_loopback: bool,
    pub(crate) allow_private: bool,
    pub(crate) max_body: usize,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) proxy: Option<Url>,
    /// Streaming calls: no total timeout, but at most this long without a byte.
    pub(crate) idle_timeout: Option<Duration>,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_http_loopback: false,
            allow_private: false,
            max_body: 1024 * 1024,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            proxy: None,
            idle_timeout: None,
        }
    }
}

impl OutboundPolicy {
    /// Allow plain HTTP, and only to this machine: `127.0.0.1`, `::1` or `localhost` (local
    /// servers, tests). Off by default. The rest of `127.0.0.0/8` stands for other hosts as
    /// far as this policy goes (it is where tests put an "internal" server), and is refused
    /// unless private addresses are allowed.
    ///
    /// ```
    /// let policy = identity_http::OutboundPolicy::default();
    /// assert!(policy.check_url("http://127.0.0.1/x", "issuer").is_err());
    /// ```
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// Allow private, link-local and other non-public addresses (an authorization server inside
    /// a private network). Off by default.
    ///
    /// ```
    /// let policy = identity_http::OutboundPolicy::default().allow_private(true);
    /// assert!(policy.check_url("https://10.0.0.7/token", "token_endpoint").is_ok());
    /// ```
    pub fn allow_private(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }

    /// The largest answer read, in bytes (1 MiB); read as it streams, so a larger one is
    /// refused before it is all in memory.
    ///
    /// ```
    /// let policy = identity_http::OutboundPolicy::default().max_body(64 * 1024);
    /// ```
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The longest one request may take, the answer's body included (10 s).
    ///
    /// ```
    /// let policy = identity_http::OutboundPolicy::default().timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// For calls whose answers stream for as long as they need (a proxied model answer): no
    /// total timeout, but a call fails once nothing has arrived for `idle`, the wait for the
    /// answer's head included. Without it, [`timeout`](Self::timeout) bounds the whole call.
    ///
    /// ```
    /// let policy = identity_http::OutboundPolicy::default()
    ///     .streaming(std::time::Duration::from_secs(30));
    /// assert_eq!(policy.idle_timeout(), Some(std::time::Duration::from_secs(30)));
    /// ```
    pub fn streaming(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// The idle timeout of a streaming policy.
    ///
    /// ```
    /// assert_eq!(identity_http::OutboundPolicy::default().idle_timeout(), None);
    /// ```
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// The longest connecting may take (3 s).
    ///
    /// ```
    /// let policy = identity_http::OutboundPolicy::default().connect_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Send every request through this HTTP(S) proxy. The proxy then resolves and connects, so
    /// only literal addresses in URLs are checked here: the proxy must enforce its own egress
    /// rules. None by default, whatever the environment says.
    ///
    /// ```
    /// let proxy = url::Url::parse("http://egress.internal:3128").unwrap();
    /// let policy = identity_http::OutboundPolicy::default().proxy(Some(proxy));
    /// ```
    pub fn proxy(mut self, proxy: Option<Url>) -> Self {
        self.proxy = proxy;
        self
    }

    /// The request timeout.
    ///
    /// ```
    /// assert_eq!(identity_http::OutboundPolicy::default().request_timeout().as_secs(), 10);
    /// ```
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// True when plain HTTP to loopback is allowed.
    ///
    /// ```
    /// assert!(!identity_http::OutboundPolicy::default().allows_http_loopback());
    /// ```
    pub fn allows_http_loopback(&self) -> bool {
        self.allow_http_loopback
    }

    /// Checks a URL (`what` names the field it came from): an absolute `https` URL (or `http`
    /// to loopback when allowed), with a host, no user info, no fragment, and not a literal
    /// address that is refused.
    ///
    /// ```
    /// let policy = identity_http::OutboundPolicy::default();
    /// assert!(policy.check_url("https://as.example.com/reg", "registration_endpoint").is_ok());
    /// for bad in ["file:///etc/passwd", "https://169.254.169.254/latest", "$(curl evil)",
    ///             "https://u:p@as.example.com/", "https://[64:ff9b::a00:1]/"] {
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
        if url.scheme() == "http" {
            if !self.allow_http_loopback {
                return Err(refuse("uses plain http; only https is allowed"));
            }
            let loopback = match (literal, &host) {
                (Some(ip), _) => is_this_machine(ip),
                (None, Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                _ => false,
            };
            if !loopback {
                return Err(refuse("uses plain http to an address that is not loopback"));
            }
        }
        if let Some(ip) = literal
            && let Err(problem) = self.check_ip(ip)
        {
            return Err(refuse(problem));
        }
        Ok(url)
    }

    /// Whether the client may connect to `ip`: the reason when it may not.
    ///
    /// ```
    /// let policy = identity_http::OutboundPolicy::default();
    /// assert!(policy.check_ip("93.184.216.34".parse().unwrap()).is_ok());
    /// assert!(policy.check_ip("100.100.100.200".parse().unwrap()).is_err());
    /// ```
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if is_this_machine(ip) {
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

/// `127.0.0.1` or `::1`.
fn is_this_machine(ip: IpAddr) -> bool {
    ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
}

/// True for addresses on the public internet.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        // Shared address space (CGNAT), RFC 6598: Alibaba's metadata is at 100.100.100.200.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, RFC 6890 (192.0.0.0/24; Oracle's metadata at 192.0.0.192).
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, RFC 2544.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, and the limited broadcast.
        || a >= 240)
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let segments = v6.segments();
    let first = segments[0];
    // Addresses that carry an IPv4 address reach it through a translator or a tunnel: they are
    // refused whole rather than judged by what they embed.
    let ipv4_compatible = segments[..6].iter().all(|s| *s == 0);
    let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
        || (first == 0x64 && segments[1] == 0xff9b && segments[2] == 1);
    let six_to_four = first == 0x2002;
    let teredo = first == 0x2001 && segments[1] == 0;
    !(v6.is_unspecified()
        || v6.is_loopback()
        || v6.is_multicast()
        || ipv4_compatible
        || nat64
        || six_to_four
        || teredo
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link local, fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Site local (deprecated, still routed inside some networks), fec0::/10.
        || (first & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32 and 3fff::/20.
        || (first == 0x2001 && segments[1] == 0x0db8)
        || (first & 0xfff0) == 0x3ff0
        // Discard-only, 100::/64.
        || (first == 0x0100 && segments[1..4] == [0, 0, 0]))
}

pub(crate) fn unsafe_url(what: &str, problem: &str) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: "unsafe_url".into(),
        description: Some(format!("`{what}` {problem}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        let policy = OutboundPolicy::default();
        for refused in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "192.0.0.192",
            "198.18.0.1",
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "2002:a9fe:a9fe::1",
            "::a9fe:a9fe",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(
                policy.check_ip(refused.parse().unwrap()).is_err(),
                "{refused}"
            );
        }
        for allowed in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "8.8.8.8",
            "::ffff:8.8.8.8",
        ] {
            assert!(
                policy.check_ip(allowed.parse().unwrap()).is_ok(),
                "{allowed}"
            );
        }
        let loopback = OutboundPolicy::default().allow_http_loopback(true);
        assert!(loopback.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(loopback.check_ip("::1".parse().unwrap()).is_ok());
        assert!(loopback.check_ip("10.0.0.1".parse().unwrap()).is_err());
        // Another loopback address stands for another host.
        assert!(loopback.check_ip("127.0.0.2".parse().unwrap()).is_err());
        assert!(
            loopback
                .check_url("http://127.0.0.2:8080/token", "token_endpoint")
                .is_err()
        );
        let private = OutboundPolicy::default().allow_private(true);
        assert!(private.check_ip("10.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn urls_from_servers_are_checked() {
        let policy = OutboundPolicy::default().allow_http_loopback(true);
        for (bad, says) in [
            ("javascript:alert(1)", "http(s)"),
            ("file:///etc/passwd", "http(s)"),
            ("$(touch /tmp/pwned)", "absolute URL"),
            ("open -a Calculator", "absolute URL"),
            ("http://example.com/token", "not loopback"),
            ("https://10.0.0.1/token", "non-public"),
            ("https://[fe80::1]/token", "non-public"),
            ("https://user:pw@as.example.com/", "user information"),
            ("https://as.example.com/#x", "fragment"),
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
        let strict = OutboundPolicy::default();
        assert!(
            strict
                .check_url("http://127.0.0.1/x", "issuer")
                .unwrap_err()
                .to_string()
                .contains("only https")
        );
    }

    proptest::proptest! {
        #[test]
        fn every_ipv4_mapped_address_is_judged_as_its_ipv4(a: u8, b: u8, c: u8, d: u8) {
            let v4 = Ipv4Addr::new(a, b, c, d);
            let policy = OutboundPolicy::default();
            proptest::prop_assert_eq!(
                policy.check_ip(IpAddr::V4(v4)).is_ok(),
                policy.check_ip(IpAddr::V6(v4.to_ipv6_mapped())).is_ok()
            );
            // An IPv4-compatible or NAT64 form is never allowed, whatever it embeds.
            let [x, y, z, w] = v4.octets();
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([x, y]), u16::from_be_bytes([z, w]));
            proptest::prop_assert!(policy.check_ip(IpAddr::V6(nat64)).is_err());
        }
    }
}
