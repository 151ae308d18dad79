//! Which hosts a run may reach: [`HostRule`]s parsed from grant strings
//! (`example.com`, `example.com:8443`, `127.0.0.1:8080`, `[::1]:8080`) and
//! exact, case-insensitive matching of a requested `host:port` against them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use http::uri::Authority;

/// A host as a grant names it and as a request asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lower-case ASCII, no trailing dot.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl Host {
    /// Normalises a host as it appears in a URI authority (`[::1]` for
    /// IPv6). Names are lower-cased and lose one trailing dot; anything that
    /// is neither an IP literal nor a plain DNS name is refused, including
    /// numeric forms the C resolver would read as an address
    /// (`2130706433`, `0x7f.1`, `127.1`): a name's last label must start
    /// with a letter, as every top-level domain does.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| format!("{text:?} is not an IPv6 address"));
        }
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let valid_label = |label: &str| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let last_is_alphabetic = name
            .rsplit('.')
            .next()
            .and_then(|label| label.bytes().next())
            .is_some_and(|b| b.is_ascii_alphabetic());
        if name.len() > 253 || !name.split('.').all(valid_label) || !last_is_alphabetic {
            return Err(format!("{text:?} is not a valid host name or IP address"));
        }
        Ok(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// Ports a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ports {
    /// No port given: the web's two, 80 and 443.
    Web,
    /// Exactly this one.
    One(u16),
}

/// One host a sandboxed command may reach through the egress proxy.
///
/// Matching is exact: `example.com` does not cover `www.example.com`,
/// `evil-example.com` or `example.com.evil.net`. A rule naming an IP
/// literal is the only way to reach a private or loopback address; a name
/// that resolves to one is refused (DNS rebinding).
///
/// ```
/// use opticlaw_sandbox::egress::HostRule;
///
/// let rule: HostRule = "API.Example.com:8443".parse()?;
/// assert_eq!(rule.to_string(), "api.example.com:8443");
/// assert!(rule.permits_text("api.example.com.", 8443));
/// assert!(!rule.permits_text("api.example.com", 443));
/// assert!(!rule.permits_text("api.example.com.evil.net", 8443));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostRule {
    host: Host,
    ports: Ports,
}

impl HostRule {
    /// The host the rule names.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Whether the rule admits `host:port` (`host` already normalised).
    pub fn permits(&self, host: &Host, port: u16) -> bool {
        let port_ok = match self.ports {
            Ports::Web => port == 80 || port == 443,
            Ports::One(p) => p == port,
        };
        port_ok && self.host == *host
    }

    /// [`permits`](Self::permits) for a host given as text; an invalid host
    /// is never permitted.
    pub fn permits_text(&self, host: &str, port: u16) -> bool {
        Host::parse(host).is_ok_and(|host| self.permits(&host, port))
    }

    /// Whether the rule names an address literally, which allows it to be
    /// private or loopback.
    pub fn names_address(&self) -> bool {
        matches!(self.host, Host::Ip(_))
    }
}

impl FromStr for HostRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // Grants are authorities: no scheme, path or user info.
        let authority: Authority = text
            .parse()
            .map_err(|e| format!("host grant {text:?}: {e}"))?;
        if authority.as_str().contains('@') {
            return Err(format!("host grant {text:?} must not carry user info"));
        }
        let host = Host::parse(authority.host()).map_err(|e| format!("host grant: {e}"))?;
        let ports = match port_of(&authority).map_err(|e| format!("host grant: {e}"))? {
            None => Ports::Web,
            Some(port) => Ports::One(port),
        };
        Ok(Self { host, ports })
    }
}

/// The port of an authority without user info: `None` when it has none,
/// an error when it has one that is not 1 to 65535 (`http` reads those as
/// "no port").
pub(crate) fn port_of(authority: &Authority) -> Result<Option<u16>, String> {
    let rest = authority
        .as_str()
        .strip_prefix(authority.host())
        .unwrap_or_default();
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Ok(None),
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) if port != 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(port)),
            _ => Err(format!("{authority}: invalid port")),
        },
        None => Err(format!("{authority}: invalid port")),
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ports {
            Ports::Web => write!(f, "{}", self.host),
            Ports::One(port) => write!(f, "{}:{port}", self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> HostRule {
        text.parse().unwrap()
    }

    #[test]
    fn names_match_exactly_and_case_insensitively() {
        let r = rule("example.com");
        assert!(r.permits_text("example.com", 443));
        assert!(r.permits_text("EXAMPLE.Com", 80));
        assert!(r.permits_text("example.com.", 443));
        for lookalike in [
            "evil-example.com",
            "example.com.evil.net",
            "www.example.com",
            "example.co",
            "xample.com",
            "example.com..",
            "example%2ecom",
            "exa\u{0301}mple.com",
            "",
        ] {
            assert!(!r.permits_text(lookalike, 443), "{lookalike:?}");
        }
    }

    #[test]
    fn ports_are_restricted() {
        assert!(!rule("example.com").permits_text("example.com", 22));
        let r = rule("example.com:8443");
        assert!(r.permits_text("example.com", 8443));
        assert!(!r.permits_text("example.com", 443));
    }

    #[test]
    fn ip_literals_match_as_addresses() {
        let r = rule("127.0.0.1:8080");
        assert!(r.names_address());
        assert!(r.permits_text("127.0.0.1", 8080));
        assert!(!r.permits_text("127.0.0.2", 8080));
        // Forms the C resolver reads as 127.0.0.1 are not names at all.
        for numeric in [
            "2130706433",
            "0x7f.1",
            "127.1",
            "0177.0.0.1",
            "127.0.0.1.nip",
        ] {
            assert!(!r.permits_text(numeric, 8080), "{numeric:?}");
        }
        let v6 = rule("[::1]:9000");
        assert!(v6.permits_text("[::1]", 9000));
        assert!(v6.permits_text("[0:0::1]", 9000));
        assert_eq!(v6.to_string(), "[::1]:9000");
    }

    #[test]
    fn malformed_grants_are_refused() {
        for bad in [
            "",
            "http://example.com",
            "example.com/path",
            "user@example.com",
            "example.com:0",
            "example.com:99999",
            "*.example.com",
            "2130706433",
            "ex ample.com",
        ] {
            assert!(bad.parse::<HostRule>().is_err(), "{bad:?} parsed");
        }
    }
}
