//! The proxy itself: hyper's HTTP/1 server on the socket from inside the
//! sandbox, hyper's HTTP/1 client (or a raw tunnel for `CONNECT`) towards
//! the granted host. Modelled on hyper's `http_proxy` example
//! (hyper 1.x, `examples/http_proxy.rs`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, oneshot};

use super::rule::port_of;
use super::{Egress, EgressEvent, Host, MAX_CONNECTIONS, Verdict, is_public};

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A proxy serving one run. Dropping it stops it: open tunnels are cut.
pub struct RunningProxy {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `listener` (bound inside the sandbox) on a thread of its own
/// until the returned handle is dropped.
pub fn start(listener: std::net::TcpListener, egress: Egress) -> io::Result<RunningProxy> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (stop, stopped) = oneshot::channel();
    let gate = Arc::new(Gate { egress });
    let thread = std::thread::Builder::new()
        .name("sandbox-egress".into())
        .spawn(move || {
            runtime.block_on(serve(listener, gate, stopped));
            // Tunnels and pending lookups are abandoned, not awaited.
            runtime.shutdown_background();
        })?;
    Ok(RunningProxy {
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn serve(
    listener: std::net::TcpListener,
    gate: Arc<Gate>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%err, "the egress proxy could not use its socket");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(err) => {
                    tracing::error!(%err, "the egress proxy stopped accepting");
                    return;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let refused = Verdict::Refused {
                reason: format!("more than {MAX_CONNECTIONS} connections at once"),
            };
            let _ = gate.record(event(&Method::CONNECT, "", 0, refused)).await;
            continue;
        };
        let gate = gate.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(|req| {
                let gate = gate.clone();
                async move { Ok::<_, Infallible>(gate.handle(req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .preserve_header_case(true)
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(err) = served
                && err.is_parse()
            {
                let refused = Verdict::Refused {
                    reason: format!("not an HTTP proxy request: {err}"),
                };
                let _ = gate.record(event(&Method::GET, "", 0, refused)).await;
            }
        });
    }
}

/// Where a request wants to go.
struct Target {
    host: Host,
    port: u16,
    /// `host:port` as sent upstream in `Host`.
    authority: String,
}

struct Gate {
    egress: Egress,
}

impl Gate {
    async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let method = req.method().clone();
        let target = match target_of(&req) {
            Ok(target) => target,
            Err(reason) => {
                let verdict = Verdict::Refused {
                    reason: reason.clone(),
                };
                let _ = self.record(event(&method, "", 0, verdict)).await;
                return text(StatusCode::BAD_REQUEST, reason);
            }
        };
        let host = target.host.to_string();
        let addresses = match self.admit(&target).await {
            Ok(addresses) => addresses,
            Err(reason) => {
                let verdict = Verdict::Refused {
                    reason: reason.clone(),
                };
                let _ = self
                    .record(event(&method, &host, target.port, verdict))
                    .await;
                return text(StatusCode::FORBIDDEN, reason);
            }
        };
        let allowed = Verdict::Allowed {
            addresses: addresses.clone(),
        };
        if let Err(reason) = self
            .record(event(&method, &host, target.port, allowed))
            .await
        {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the connection could not be audited: {reason}"),
            );
        }
        let upstream = match TcpStream::connect(&addresses[..]).await {
            Ok(upstream) => upstream,
            Err(err) => {
                let reason = format!("dialling {host}:{}: {err}", target.port);
                let verdict = Verdict::Failed {
                    reason: reason.clone(),
                };
                let _ = self
                    .record(event(&method, &host, target.port, verdict))
                    .await;
                return text(StatusCode::BAD_GATEWAY, reason);
            }
        };
        if method == Method::CONNECT {
            tokio::spawn(tunnel(req, upstream));
            return Response::new(body(Bytes::new()));
        }
        match forward(req, upstream, &target).await {
            Ok(response) => response,
            Err(err) => text(StatusCode::BAD_GATEWAY, format!("{host}: {err}")),
        }
    }

    /// Checks the target against the grant and resolves it once.
    async fn admit(&self, target: &Target) -> Result<Vec<SocketAddr>, String> {
        let port = target.port;
        if !self
            .egress
            .rules()
            .iter()
            .any(|rule| rule.permits(&target.host, port))
        {
            return Err(format!("{}:{port} is not a granted host", target.host));
        }
        let name = match &target.host {
            // The matching rule names this very address.
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Name(name) => name,
        };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|err| format!("{name} does not resolve: {err}"))?
            .collect();
        if addresses.is_empty() {
            return Err(format!("{name} does not resolve"));
        }
        // Every answer must be public: the dial may use any of them.
        if let Some(private) = addresses.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "{name} resolves to {}, a private, loopback or reserved address; \
                 only a grant naming that address allows it",
                private.ip()
            ));
        }
        Ok(addresses)
    }

    /// Reports a decision; an error means it was not recorded.
    async fn record(&self, event: EgressEvent) -> Result<(), String> {
        match &event.verdict {
            Verdict::Allowed { .. } => {
                tracing::info!(host = %event.host, port = event.port, "egress allowed")
            }
            _ => {
                tracing::warn!(host = %event.host, port = event.port, verdict = ?event.verdict, "egress not allowed")
            }
        }
        match self.egress.observer.clone() {
            // The observer may block on a durable write; the dial waits.
            Some(observer) => tokio::task::spawn_blocking(move || observer.record(&event))
                .await
                .map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }
}

/// The host and port a proxy request names: `CONNECT host:port`, or an
/// absolute `http://` URI (port 80 by default).
fn target_of(req: &Request<Incoming>) -> Result<Target, String> {
    let uri = req.uri();
    let authority = uri.authority().ok_or_else(|| {
        format!("{uri} names no host: this is a proxy, send an absolute URI or CONNECT")
    })?;
    if authority.as_str().contains('@') {
        return Err("a proxy request must not carry user info".into());
    }
    let port = if req.method() == Method::CONNECT {
        if uri.scheme().is_some() || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(format!("CONNECT {uri}: expected host:port"));
        }
        port_of(authority)?.ok_or_else(|| format!("CONNECT {uri}: expected host:port"))?
    } else {
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "{uri}: only http:// is proxied directly; use CONNECT for https"
            ));
        }
        port_of(authority)?.unwrap_or(80)
    };
    let host = Host::parse(authority.host())?;
    Ok(Target {
        authority: format!("{host}:{port}"),
        host,
        port,
    })
}

/// Splices the client's upgraded connection to the upstream socket.
async fn tunnel(req: Request<Incoming>, mut upstream: TcpStream) {
    match hyper::upgrade::on(req).await {
        Ok(upgraded) => {
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Err(err) => tracing::debug!(%err, "a CONNECT was never upgraded"),
    }
}

/// Sends a plain HTTP request upstream in origin form, with `Host` set to
/// the checked target (a different `Host` header could pick another
/// virtual host) and the proxy's own headers removed.
async fn forward(
    req: Request<Incoming>,
    upstream: TcpStream,
    target: &Target,
) -> Result<Response<ProxyBody>, hyper::Error> {
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .title_case_headers(true)
        .handshake(TokioIo::new(upstream))
        .await?;
    tokio::spawn(connection);
    let (mut parts, body) = req.into_parts();
    let origin_form = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    parts.uri = origin_form;
    parts.headers.remove("proxy-authorization");
    parts.headers.remove("proxy-connection");
    if let Ok(host) = HeaderValue::from_str(&target.authority) {
        parts.headers.insert(HOST, host);
    }
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await?;
    Ok(response.map(BodyExt::boxed))
}

fn event(method: &Method, host: &str, port: u16, verdict: Verdict) -> EgressEvent {
    EgressEvent {
        method: method.to_string(),
        host: host.to_owned(),
        port,
        verdict,
    }
}

fn body(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn text(status: StatusCode, reason: String) -> Response<ProxyBody> {
    let mut response = Response::new(body(Bytes::from(format!(
        "opticlaw sandbox proxy: {reason}\n"
    ))));
    *response.status_mut() = status;
    response
}
