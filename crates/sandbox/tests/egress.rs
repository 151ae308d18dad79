//! Per-host network grants: a sandboxed command reaches a granted host only
//! through the run's proxy, and nothing else at all. Real processes (curl
//! inside the sandbox), real sockets on loopback, a real HTTP server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opticlaw_sandbox::egress::{Egress, EgressEvent, EgressLog, Verdict};
use opticlaw_sandbox::{NamespaceSandbox, Network, RunOutput, RunSpec, Sandbox};

/// An HTTP server on host loopback that answers `hello from PATH` and
/// remembers the `Host` header and path of every request.
struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl TestServer {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_io()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        log.lock().unwrap().push(format!("{host}{}", req.uri()));
                        let body = format!("hello from {}", req.uri().path());
                        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            _runtime: runtime,
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn have_curl() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: curl is not on this machine");
    }
    found
}

fn run(hosts: &[String], script: &str) -> (RunOutput, Arc<EgressLog>) {
    let log = Arc::new(EgressLog::default());
    let egress = Egress::parse(hosts).unwrap().observed_by(log.clone());
    let spec = RunSpec::new(["/bin/sh", "-c", script]).network(Network::Proxied(egress));
    let out = NamespaceSandbox::new()
        .expect("namespaces are available on this machine")
        .run(&spec)
        .unwrap();
    (out, log)
}

const CURL: &str = "curl -sS --max-time 10 -w ' status=%{http_code}' ";

#[test]
fn a_granted_host_is_reached_through_the_proxy_over_http_and_connect() {
    if !have_curl() {
        return;
    }
    let server = TestServer::start();
    let grant = server.addr.to_string();
    let url = format!("http://{grant}");
    // Plain proxying (absolute URI), then a CONNECT tunnel (what HTTPS uses).
    let script = format!("{CURL} {url}/plain; echo; {CURL} --proxytunnel {url}/tunnel");
    let (out, log) = run(std::slice::from_ref(&grant), &script);

    assert!(out.isolation.net_ns, "{out:?}");
    assert_eq!(out.isolation.egress_hosts, vec![grant.clone()]);
    let stdout = out.stdout.text();
    assert!(stdout.contains("hello from /plain status=200"), "{out:?}");
    assert!(stdout.contains("hello from /tunnel status=200"), "{out:?}");
    assert_eq!(
        server.seen(),
        vec![format!("{grant}/plain"), format!("{grant}/tunnel")]
    );
    let events = log.events();
    let methods: Vec<&str> = events.iter().map(|e| e.method.as_str()).collect();
    assert_eq!(methods, ["GET", "CONNECT"], "{events:?}");
    for event in &events {
        assert_eq!(event.host, "127.0.0.1");
        assert_eq!(event.port, server.addr.port());
        assert_eq!(
            event.verdict,
            Verdict::Allowed {
                addresses: vec![server.addr]
            }
        );
    }
}

#[test]
fn an_ungranted_host_or_port_is_refused_and_audited() {
    if !have_curl() {
        return;
    }
    let granted = TestServer::start();
    let other = TestServer::start();
    let script = format!(
        "{CURL} http://{}/x; echo; {CURL} --proxytunnel http://{}/y; echo; {CURL} http://{}:{}/z",
        other.addr,
        other.addr,
        granted.addr.ip(),
        other.addr.port()
    );
    let (out, log) = run(&[granted.addr.to_string()], &script);

    assert!(other.seen().is_empty(), "the ungranted server was reached");
    assert!(granted.seen().is_empty());
    assert!(out.stdout.text().contains("status=403"), "{out:?}");
    assert!(!out.stdout.text().contains("hello"), "{out:?}");
    assert_all_refused(&log.events(), 3, "not a granted host");
}

/// Asserts `count` events, each a refusal whose reason contains `why`.
fn assert_all_refused(events: &[EgressEvent], count: usize, why: &str) {
    assert_eq!(events.len(), count, "{events:?}");
    for event in events {
        match &event.verdict {
            Verdict::Refused { reason } => assert!(reason.contains(why), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn a_direct_connection_that_bypasses_the_proxy_has_no_route() {
    if !have_curl() {
        return;
    }
    let server = TestServer::start();
    let grant = server.addr.to_string();
    // The granted host itself, without the proxy: the sandbox's 127.0.0.1
    // is its own loopback, where nothing listens. Any other address has no
    // route at all (no interface but `lo`; 192.0.2.1 is TEST-NET-1, and no
    // packet can leave anyway).
    let script = format!(
        "curl -sS --max-time 5 --noproxy '*' http://{grant}/direct; echo \" curl=$?\"; \
         bash -c 'exec 3<>/dev/tcp/192.0.2.1/80' 2>&1; echo \" tcp=$?\""
    );
    let (out, log) = run(&[grant], &script);

    let text = format!("{}{}", out.stdout.text(), out.stderr.text());
    assert!(
        text.contains("curl=7"),
        "curl should fail to connect: {text}"
    );
    assert!(text.contains("Network is unreachable"), "{text}");
    assert!(!text.contains("tcp=0"), "{text}");
    assert!(server.seen().is_empty(), "the server was reached directly");
    assert!(
        log.events().is_empty(),
        "the proxy was not asked: {:?}",
        log.events()
    );
}

#[test]
fn lookalike_hostnames_are_refused_without_a_lookup() {
    if !have_curl() {
        return;
    }
    let script = format!(
        "for h in evil-example.com example.com.evil.net www.example.com EXAMPLE.com.evil.net; do \
           {CURL} http://$h/; echo; {CURL} --proxytunnel https://$h/; echo; done"
    );
    let (out, log) = run(&["example.com".to_owned()], &script);

    assert!(!out.stdout.text().contains("status=200"), "{out:?}");
    let events = log.events();
    assert!(events.iter().all(|e| e.host != "example.com"), "{events:?}");
    // Refused on the name alone: "does not resolve" would mean a lookup.
    assert_all_refused(&events, 8, "not a granted host");
}

#[test]
fn a_granted_name_resolving_to_loopback_is_refused() {
    if !have_curl() {
        return;
    }
    let server = TestServer::start();
    let grant = format!("localhost:{}", server.addr.port());
    let script = format!("{CURL} http://{grant}/rebound");
    let (out, log) = run(&[grant], &script);

    assert!(out.stdout.text().contains("status=403"), "{out:?}");
    assert!(server.seen().is_empty(), "a name reached loopback");
    assert_all_refused(&log.events(), 1, "loopback");
}

#[test]
fn a_run_without_a_grant_gets_no_proxy() {
    let spec = RunSpec::new([
        "/bin/sh",
        "-c",
        "env; exec 3<>/dev/tcp/127.0.0.1/3128 && echo connected",
    ]);
    let out = NamespaceSandbox::new().unwrap().run(&spec).unwrap();
    assert!(out.isolation.net_ns);
    assert!(out.isolation.egress_hosts.is_empty());
    assert!(
        !out.stdout.text().to_lowercase().contains("proxy"),
        "{out:?}"
    );
    assert!(!out.stdout.text().contains("connected"), "{out:?}");
}
