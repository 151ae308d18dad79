//! Token mint + verify and audit append. Prints one machine-readable last
//! line: `mint_verify_us=… audit_append_us=…`.

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group};
use opticlaw_security::audit;
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::{
    CapabilityToken, DEFAULT_TTL, Grant, NoRevocations, Request, TokenMinter, TokenVerifier,
};
use opticlaw_store::{Store, Synchronous};
use serde_json::json;

fn grant() -> Grant {
    Grant {
        tool: "shell".into(),
        scope: "read".into(),
        resource: "/home/me/notes".into(),
        audience: "runner-1".into(),
        node: "task-7/node-2".into(),
    }
}

const REQUEST: Request<'static> = Request {
    tool: "shell",
    scope: "read",
    resource: "/home/me/notes/a.md",
};

fn mint_verify_once(minter: &TokenMinter, verifier: &TokenVerifier) {
    let now = Utc::now();
    let token = minter.mint(&grant(), now, DEFAULT_TTL).unwrap().to_base64();
    verifier
        .verify(&token, &REQUEST, now, &NoRevocations)
        .unwrap();
}

/// One bare Ed25519 sign + verify of a token-sized message: the floor of
/// any format that signs each token with Ed25519.
fn ed25519_sign_verify(key: &ed25519_dalek::SigningKey) {
    use ed25519_dalek::{Signer, Verifier};
    let message = [0u8; 200];
    let signature = key.sign(&message);
    key.verifying_key().verify(&message, &signature).unwrap()
}

fn append_once(store: &Store, action: &serde_json::Value) {
    audit::append(
        store.connection(),
        "tool_action",
        "runner-1",
        action,
        Utc::now(),
    )
    .unwrap();
}

fn open_store(dir: &tempfile::TempDir) -> Store {
    Store::open_with(
        &dir.path().join("bench.db"),
        Synchronous::Normal,
        &[opticlaw_security::COMPONENT],
    )
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let minter = TokenMinter::new(SigningKey::ephemeral());
    let verifier = TokenVerifier::new(minter.verifying_key(), "runner-1");
    c.bench_function("token_mint_verify", |b| {
        b.iter(|| mint_verify_once(&minter, &verifier))
    });
    let now = Utc::now();
    let token = minter.mint(&grant(), now, DEFAULT_TTL).unwrap().to_base64();
    c.bench_function("token_verify", |b| {
        b.iter(|| {
            verifier
                .verify(&token, &REQUEST, now, &NoRevocations)
                .unwrap()
        })
    });

    c.bench_function("token_parse_only", |b| {
        b.iter(|| CapabilityToken::parse(&token, &minter.verifying_key()).unwrap())
    });
    // Context for the figures above: one bare Ed25519 sign + verify here.
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    c.bench_function("ed25519_sign_verify_baseline", |b| {
        b.iter(|| ed25519_sign_verify(&key))
    });

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let action = json!({"tool": "shell", "scope": "read", "resource": "/home/me/notes/a.md"});
    c.bench_function("audit_append", |b| b.iter(|| append_once(&store, &action)));
}

fn median_us(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

/// CPU time of this thread: on a machine shared with other jobs, wall time
/// includes waiting for a core, which this does not.
fn thread_cpu() -> Duration {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("thread CPU clock");
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32)
}

/// Wall and CPU medians of `samples` runs of `f`.
fn measure(samples: usize, mut f: impl FnMut()) -> (f64, f64) {
    let (mut wall, mut cpu) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let (start, start_cpu) = (Instant::now(), thread_cpu());
        f();
        cpu.push(thread_cpu() - start_cpu);
        wall.push(start.elapsed());
    }
    (median_us(wall), median_us(cpu))
}

/// The summary line, measured directly so it prints in any bench mode.
/// `mint_verify_us` is the wall-clock median, `mint_verify_cpu_us` the
/// thread-CPU median, and `ed25519_us` one bare Ed25519 sign + verify (the
/// floor any public-key token format pays), for scale.
fn summary() {
    let minter = TokenMinter::new(SigningKey::ephemeral());
    let verifier = TokenVerifier::new(minter.verifying_key(), "runner-1");
    let (mint_verify, mint_verify_cpu) = measure(2000, || mint_verify_once(&minter, &verifier));
    let now = Utc::now();
    let (mint, _) = measure(2000, || {
        minter.mint(&grant(), now, DEFAULT_TTL).unwrap().to_base64();
    });
    let token = minter.mint(&grant(), now, DEFAULT_TTL).unwrap().to_base64();
    let (verify, _) = measure(2000, || {
        verifier
            .verify(&token, &REQUEST, now, &NoRevocations)
            .unwrap();
    });
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let (ed25519, _) = measure(2000, || ed25519_sign_verify(&key));
    let parts = breakdown(&minter, &verifier);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let action = json!({"tool": "shell"});
    let (append, _) = measure(500, || {
        append_once(&store, &action);
    });
    println!(
        "mint_verify_us={mint_verify:.1} mint_verify_cpu_us={mint_verify_cpu:.1} mint_us={mint:.1} \
         verify_us={verify:.1} ed25519_us={ed25519:.1} audit_append_us={append:.1} {parts}"
    );
}

/// Keeps the optimiser from dropping a timed computation.
fn sink<T>(value: T) {
    std::hint::black_box(value);
}

/// Where a mint and a verification spend their time, each part timed on
/// its own (CPU medians), printed as a table and returned as `key=value`s.
/// The bare Ed25519 sign + verify (`ed25519_us` above) is the floor any
/// public-key format (biscuit, used before, paid four curve operations)
/// would pay; a macaroon pays one HMAC-SHA256 per caveat.
fn breakdown(minter: &TokenMinter, verifier: &TokenVerifier) -> String {
    const N: usize = 2000;
    let cpu = |f: &mut dyn FnMut()| measure(N, f).1;
    let now = Utc::now();
    let token = minter.mint(&grant(), now, DEFAULT_TTL).unwrap();
    let text = token.to_base64();
    let key = minter.verifying_key();
    let parts = [
        // Mint: the grant's JSON, two HMACs (identifier, grant caveat).
        (
            "mint_build",
            cpu(&mut || sink(minter.mint(&grant(), now, DEFAULT_TTL).unwrap())),
        ),
        ("serialize", cpu(&mut || sink(token.to_base64()))),
        // Verify: base64 + V2 binary without the chain; then everything
        // `parse` does (the HMAC chain); then our checks on a parsed token.
        (
            "decode",
            cpu(&mut || sink(libmacaroon::Macaroon::deserialize(&text).unwrap())),
        ),
        (
            "parse_and_check_chain",
            cpu(&mut || sink(CapabilityToken::parse(&text, &key).unwrap())),
        ),
        (
            "authorize",
            cpu(&mut || {
                sink(
                    verifier
                        .verify_parsed(&token, &REQUEST, now, &NoRevocations)
                        .unwrap(),
                )
            }),
        ),
    ];
    println!("token parts (CPU medians of {N}):");
    for (name, us) in &parts {
        println!("  {name:<28} {us:>7.1} µs");
    }
    parts
        .iter()
        .map(|(name, us)| format!("{name}_us={us:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

criterion_group!(security, benches);

fn main() {
    security();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
