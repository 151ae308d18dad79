use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use opticlaw_runtime::{Runtime, RuntimeConfig};
use opticlaw_store::{StoreHandle, Synchronous};
use opticlaw_triage::rules::RuleEngine;

use crate::channels::{DaemonLedger, RuntimeSink, SqliteAudit, SqliteCursors, SqlitePairing};
use crate::config::Config;
use crate::home::Home;
use crate::server::{AppState, router};

#[derive(clap::Args)]
pub struct Args {
    /// Listen here instead of server.bind (e.g. 127.0.0.1:0 for any free port)
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Answer what no rule answers from a replayed golden trace instead of
    /// the [models] section: replay:FILE (offline, no real model)
    #[arg(long, value_name = "replay:FILE")]
    model: Option<String>,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    if !home.config_file().exists() {
        eprintln!("first run: creating {}", home.root.display());
        crate::commands::init::initialize(&home, Default::default(), &mut std::io::stderr())?;
    }
    let mut config = Config::load(&home.config_file())?;
    if let Some(bind) = args.bind {
        config.server.bind = bind;
    }
    // One thread: the daemon's work is I/O and microsecond rules, and a
    // single idle thread parked in epoll is what makes idle truly idle.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(home, config, args.model))
}

async fn serve(home: Home, config: Config, model: Option<String>) -> Result<ExitCode> {
    let token = home.read_token()?;
    let rules = RuleEngine::with_patterns(&config.rules)?;
    let store = StoreHandle::open_with(
        &home.store_file(),
        config.store.synchronous,
        &crate::store_components(),
    )?;
    // The model path: a replayed trace (`--model replay:FILE`), else the
    // [models] section when it has tiers, else none (a notice says how).
    // The replay server must live as long as the daemon.
    let (_replay_server, model_answerer) = match &model {
        Some(spec) => {
            let file = crate::model_answerer::replay_path(spec)?;
            let (server, answerer) = crate::model_answerer::replay(file, store.clone()).await?;
            (Some(server), Some(answerer))
        }
        None => match &config.models {
            Some(models) if !models.tiers.is_empty() => (
                None,
                Some(crate::model_answerer::build(models, store.clone()).await?),
            ),
            _ => (None, None),
        },
    };
    let no_model_hint = format!(
        "run `opticlaw models add --help` (it writes [models] in {}), then restart the daemon",
        home.config_file().display()
    );
    // Memory answers /memory, /remember, /forget and gives the model context.
    let (memory, answerer) = crate::memory::wire(
        &home,
        &config.memory,
        model_answerer
            .clone()
            .map(|a| Arc::new(a) as Arc<dyn opticlaw_runtime::Answerer>),
        model_answerer.clone(),
        &no_model_hint,
    )?;
    let runtime_config = RuntimeConfig {
        queue_capacity: config.runtime.queue_capacity,
        workers: config.runtime.workers,
        retry_after_secs: config.runtime.retry_after_secs,
        no_model_hint,
        // Fault injection for crash tests: accept and store, never process.
        process_events: std::env::var_os("OPTICLAW_FAULT_HOLD_EVENTS").is_none(),
    };
    // The orchestrator comes first: the runtime takes it as its actor, and
    // it reaches the runtime (notices, retry timers) once that has started.
    let late_runtime = Arc::new(crate::orchestration::LateRuntime::default());
    let orchestrator =
        crate::orchestration::build(&home, &config, store.clone(), late_runtime.clone())?
            .with_reasoner(Arc::new(crate::reasoning::DaemonReasoner {
                model: model_answerer.clone(),
            }));
    let planner = crate::planning::build_planner(&config).context("[[policy]] for the planner")?;
    let actor = Arc::new(crate::orchestration::DaemonActor {
        orch: orchestrator.clone(),
        planner: Arc::new(planner),
        model: model_answerer.filter(|_| config.planner.model_plans),
        tool_need: config.planner.tool_need,
    });
    let runtime = Runtime::start_with_actor(
        store.clone(),
        rules,
        runtime_config,
        Some(answerer),
        Some(actor),
    )
    .await?;
    late_runtime.set(runtime.clone());
    if let Some(memory) = memory {
        crate::memory::follow(&runtime, memory);
    }
    let resumed = orchestrator.resume_all().await?;
    if resumed > 0 {
        tracing::info!(resumed, "tasks resumed from the orchestrator's log");
    }
    let addr: std::net::SocketAddr = config.server.bind.parse().with_context(|| {
        format!(
            "server.bind \"{}\" is not an address:port",
            config.server.bind
        )
    })?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr}: is another opticlaw running? Change server.bind or stop it"
        )
    })?;
    let local = listener.local_addr()?;
    let state = Arc::new(AppState {
        runtime: runtime.clone(),
        token,
        max_body_bytes: config.server.max_body_bytes,
        local_user: config.local.user_id.clone(),
    });
    // The ready line: scripts and `bench idle` wait for it on stdout.
    println!(
        "opticlaw ready on http://{local} (pid {})",
        std::process::id()
    );
    std::io::stdout().flush().ok();
    // The web chat's link, token in the fragment; stdout keeps only the ready line.
    let chat_link = crate::webchat::chat_url(local, &state.token);
    eprintln!("web chat: {chat_link}");
    tracing::info!(%local, home = %home.root.display(), "serving");

    let grace = Duration::from_secs(config.runtime.shutdown_grace_secs);
    let mut app = router(state.clone()).merge(crate::orchestration::router(
        orchestrator,
        state.token.clone(),
        state.local_user.clone(),
    ));
    if let Some(gateway) = config.gateway.clone() {
        let gateway = opticlaw_gateway::Gateway::new(
            gateway,
            Arc::new(RuntimeSink::new(runtime.clone())),
            Arc::new(SqliteAudit(store.clone())),
            Arc::new(SqlitePairing(store.clone())),
        )
        .context("setting up the chat platforms in [gateway]")?;
        let gateway = Arc::new(gateway);
        app = app.merge(opticlaw_gateway::webhook_router(gateway.clone()));
        let ledger = Arc::new(
            DaemonLedger::open(
                &home.data_dir(),
                store.clone(),
                config.store.synchronous == Synchronous::Full,
            )
            .await?,
        );
        let sender = opticlaw_gateway::Sender::new(
            // For uploads; a reply's JSON goes through the sender's own
            // hyper client. Connections are kept with no idle timeout:
            // hyper arms its pool reaper timer only when there is one, and
            // an idle daemon must not wake. Platform APIs answer directly;
            // a redirect would be a misconfigured `api_base`.
            reqwest::Client::builder()
                .pool_idle_timeout(None)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the platform HTTP client")?,
            gateway.config().clone(),
            ledger.clone(),
        )
        // A part's guard lasts until the outbox's delivered mark.
        .with_deferred_completion();
        let routes: Vec<String> = gateway.channels().map(|c| c.route()).collect();
        // Accounts with no public URL: Telegram getUpdates, Matrix /sync.
        // Each holds one long-poll open; no idle pool, no timer.
        opticlaw_gateway::poll::spawn_receivers(
            &gateway,
            &Arc::new(SqliteCursors(store.clone())),
            &opticlaw_models::providers::no_idle_pool_client(),
        );
        tokio::spawn(crate::channels::run_outbound(
            runtime.clone(),
            gateway,
            sender,
            ledger,
        ));
        tracing::info!(?routes, "chat platform webhooks served");
    }

    let mut http = serve_http_on_own_thread(listener, app)?;
    let signal = tokio::select! {
        signal = shutdown_signal() => signal,
        ended = &mut http.done => {
            ended.context("the HTTP server thread panicked")??;
            anyhow::bail!("the HTTP server stopped on its own");
        }
    };
    tracing::info!(signal, "draining in-flight work");
    runtime.shutdown(grace).await;
    // Then the HTTP server stops accepting and lets open requests finish.
    let _ = http.stop.send(());
    http.done
        .await
        .context("the HTTP server thread panicked")?
        .context("the HTTP server failed")?;
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// The HTTP server on its own thread, and how to stop it.
struct HttpThread {
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::sync::oneshot::Receiver<std::io::Result<()>>,
}

/// Serves `app` on a thread of its own with a single-threaded runtime:
/// under load, webhook parsing and verification fill one core while this
/// thread's runtime (workers, scheduler, platform sends) needs most of
/// another. Idle, both threads park in epoll with no timeout, so the
/// daemon still makes zero wake-ups. Handlers reach the runtime and the
/// store through channels, which work across runtimes.
fn serve_http_on_own_thread(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> Result<HttpThread> {
    let listener = listener.into_std()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (finished, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("opticlaw-http".into())
        .spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|http| {
                    http.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        axum::serve(
                            listener,
                            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                        )
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                    })
                });
            let _ = finished.send(served);
        })
        .context("starting the HTTP server thread")?;
    Ok(HttpThread { stop, done })
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}
