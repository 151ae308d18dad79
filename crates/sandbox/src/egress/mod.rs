//! Per-host network grants: an HTTP proxy that is a run's only way out.
//!
//! A run granted [`Network::Proxied`](crate::Network::Proxied) keeps its own
//! empty network namespace (loopback only, no route anywhere). The sandbox
//! binds a listening socket on `127.0.0.1:`[`PROXY_PORT`] *inside* that
//! namespace and hands it to the supervisor ([`listener`]), which serves it
//! from the host's namespace as an HTTP proxy ([`proxy`]): `CONNECT` for
//! HTTPS, absolute-URI requests for plain HTTP. Each request's host and port
//! are checked against the grant's [`HostRule`]s (exact, case-insensitive),
//! a granted name is resolved once and refused if any answer is a private,
//! loopback or reserved address ([`is_public`]), and only the resolved
//! addresses are dialled. The command finds the proxy through
//! `HTTP_PROXY`/`HTTPS_PROXY` (and lower-case forms). Every allowed,
//! refused and failed connection is reported to the grant's
//! [`EgressObserver`] before anything is dialled. The proxy runs on one
//! thread for the run only and stops when the command exits.

mod address;
pub(crate) mod listener;
pub(crate) mod proxy;
mod rule;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use address::is_public;
pub use rule::{Host, HostRule};

/// The port the proxy listens on inside each sandbox (every run has its own
/// network namespace, so it never clashes).
pub const PROXY_PORT: u16 = 3128;

/// Most connections a run may have open through its proxy at once.
pub const MAX_CONNECTIONS: usize = 64;

/// What a run may reach: its host rules, and who hears of every connection.
#[derive(Clone, Default)]
pub struct Egress {
    rules: Vec<HostRule>,
    observer: Option<Arc<dyn EgressObserver>>,
}

impl Egress {
    /// A grant of exactly these hosts.
    pub fn new(rules: Vec<HostRule>) -> Self {
        Self {
            rules,
            observer: None,
        }
    }

    /// Parses grant strings (`example.com`, `example.com:8443`,
    /// `127.0.0.1:8080`); the first invalid one is an error naming it.
    pub fn parse<I, S>(hosts: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let rules = hosts
            .into_iter()
            .map(|h| h.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Self::new(rules))
    }

    /// Reports every connection decision to `observer` (an audit log).
    pub fn observed_by(mut self, observer: Arc<dyn EgressObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The granted hosts.
    pub fn rules(&self) -> &[HostRule] {
        &self.rules
    }
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("rules", &self.rules)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl PartialEq for Egress {
    /// Grants are equal when they admit the same hosts.
    fn eq(&self, other: &Self) -> bool {
        self.rules == other.rules
    }
}

impl Eq for Egress {}

impl Serialize for Egress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rules.iter().map(ToString::to_string))
    }
}

/// One decision of the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressEvent {
    /// `CONNECT`, or the method of a plain HTTP request.
    pub method: String,
    /// The host asked for, normalised (empty if the request had none).
    pub host: String,
    /// The port asked for (0 if none).
    pub port: u16,
    /// What the proxy did.
    pub verdict: Verdict,
}

/// What the proxy did with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Granted; about to dial these addresses (resolved once).
    Allowed { addresses: Vec<SocketAddr> },
    /// Refused: nothing was dialled.
    Refused { reason: String },
    /// Granted, but the dial failed.
    Failed { reason: String },
}

/// Hears every decision of a run's proxy, before the dial it allows.
///
/// Called on a blocking thread: an implementation may wait for a durable
/// write. An error refuses the connection (nothing unaudited goes out).
pub trait EgressObserver: Send + Sync {
    fn record(&self, event: &EgressEvent) -> Result<(), String>;
}

/// An observer that keeps the events in memory (tests, diagnostics).
#[derive(Debug, Default)]
pub struct EgressLog(Mutex<Vec<EgressEvent>>);

impl EgressLog {
    /// The events so far, in order.
    pub fn events(&self) -> Vec<EgressEvent> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl EgressObserver for EgressLog {
    fn record(&self, event: &EgressEvent) -> Result<(), String> {
        let mut events = self
            .0
            .lock()
            .map_err(|_| "egress log poisoned".to_owned())?;
        events.push(event.clone());
        Ok(())
    }
}

/// The variables that point a command at its proxy.
pub(crate) fn proxy_env() -> [(&'static str, String); 5] {
    let url = format!("http://127.0.0.1:{PROXY_PORT}");
    [
        ("HTTP_PROXY", url.clone()),
        ("HTTPS_PROXY", url.clone()),
        ("http_proxy", url.clone()),
        ("https_proxy", url),
        // Nothing bypasses the proxy: there is no other way out.
        ("NO_PROXY", String::new()),
    ]
}
