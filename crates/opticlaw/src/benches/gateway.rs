//! `opticlaw bench gateway`: verified webhooks in, rule replies out through
//! a fake platform API, all on loopback, against a real daemon.
//!
//! Telegram is measured (its webhook carries a secret token, so the client
//! side costs nothing and the figure is the daemon's). Each message is a
//! `/time` from its own chat. A rule answer is stored and answered before
//! the webhook's 200, so the webhook round trip is "signed event in, reply
//! committed"; delivery to the fake Bot API then runs under Telegram's own
//! rate limit (about 30 messages a second per bot), which the sender keeps.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    /// How long to send messages
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Webhook requests in flight at once
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Forged requests sent alongside (each must be refused)
    #[arg(long, default_value_t = 200)]
    forged: usize,
}

const SECRET: &str = "bench-webhook-secret";

type Arrivals = Arc<Mutex<HashMap<i64, Instant>>>;

pub fn run(args: Args) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

async fn fake_telegram(arrivals: Arrivals) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/{*path}",
        post(move |Json(body): Json<Value>| {
            let arrivals = arrivals.clone();
            async move {
                if let Some(chat) = body["chat_id"]
                    .as_i64()
                    .or_else(|| body["chat_id"].as_str().and_then(|s| s.parse().ok()))
                {
                    arrivals
                        .lock()
                        .unwrap()
                        .entry(chat)
                        .or_insert_with(Instant::now);
                }
                Json(json!({ "ok": true, "result": { "message_id": 1 } }))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

async fn bench(args: Args) -> Result<ExitCode> {
    let arrivals: Arrivals = Arc::default();
    let api_base = fake_telegram(arrivals.clone()).await?;
    let home = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let init = std::process::Command::new(&exe)
        .args(["init", "--port", &port.to_string()])
        .env("OPTICLAW_HOME", home.path())
        .stdout(std::process::Stdio::null())
        .status()?;
    if !init.success() {
        bail!("`opticlaw init` failed");
    }
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(home.path().join("config.toml"))?;
    writeln!(
        config,
        "\n[gateway.telegram]\nbot_token = \"1:BENCH\"\nwebhook_secret = \"{SECRET}\"\nallow_from = [\"*\"]\napi_base = \"{api_base}\"\n"
    )?;
    let mut daemon = tokio::process::Command::new(&exe)
        .arg("serve")
        .env("OPTICLAW_HOME", home.path())
        .env("OPTICLAW_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the daemon")?;
    {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(daemon.stdout.take().expect("piped")).lines();
        let ready = lines.next_line().await?.unwrap_or_default();
        if !ready.contains("ready") {
            bail!("the daemon did not start: {ready}");
        }
    }
    let url = format!("http://127.0.0.1:{port}/webhooks/telegram");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;

    // Forged requests: every one must be refused.
    let mut refused = 0;
    for i in 0..args.forged {
        let status = client
            .post(&url)
            .header("X-Telegram-Bot-Api-Secret-Token", "forged")
            .json(&update(-1 - i as i64, 1_000_000_000 + i as i64))
            .send()
            .await?
            .status();
        if status == 401 || status == 403 {
            refused += 1;
        }
    }

    let sent: Arc<Mutex<HashMap<i64, Duration>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut senders = Vec::new();
    for worker in 0..args.concurrency {
        let (client, url, sent) = (client.clone(), url.clone(), sent.clone());
        senders.push(tokio::spawn(async move {
            let mut n = 0i64;
            while Instant::now() < deadline {
                let chat = (worker as i64) * 10_000_000 + n;
                n += 1;
                let began = Instant::now();
                let response = client
                    .post(&url)
                    .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
                    .json(&update(chat, chat))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        sent.lock().unwrap().insert(chat, began.elapsed());
                    }
                    Ok(r) => eprintln!("webhook answered {}", r.status()),
                    Err(err) => eprintln!("webhook failed: {err}"),
                }
            }
        }));
    }
    for sender in senders {
        sender.await?;
    }
    let ingress_elapsed = start.elapsed();
    let sent = sent.lock().unwrap().clone();
    let mut round_trips: Vec<Duration> = sent.values().copied().collect();
    round_trips.sort_unstable();
    if round_trips.is_empty() {
        bail!("no webhook was accepted");
    }
    let pct =
        |p: f64| round_trips[((round_trips.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let rate = round_trips.len() as f64 / ingress_elapsed.as_secs_f64();
    // Delivery continues under the platform's rate limit; look for 5 s more.
    let deliver_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let delivered = arrivals.lock().unwrap().len();
    let delivery_rate = delivered as f64 / (ingress_elapsed + deliver_from.elapsed()).as_secs_f64();
    let _ = daemon.kill().await;
    println!(
        "telegram: {} signed webhooks stored and answered in {:.1}s ({rate:.0}/s), round trip p50={:.2}ms p95={:.2}ms p99={:.2}ms; {delivered} replies delivered to the fake Bot API ({delivery_rate:.0}/s, Telegram's rate limit applies)",
        round_trips.len(),
        ingress_elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.95),
        pct(0.99)
    );
    println!(
        "msgs_per_s={rate:.0} p95_ms={:.2} forged_refused={refused}/{}",
        pct(0.95),
        args.forged
    );
    Ok(ExitCode::SUCCESS)
}

fn update(update_id: i64, chat: i64) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "from": { "id": chat, "is_bot": false, "first_name": "Bench" },
            "chat": { "id": chat, "type": "private" },
            "date": 1_764_000_000,
            "text": "/time"
        }
    })
}
