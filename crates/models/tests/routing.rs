//! Selection: complexity, privacy, budget, latency, history, breakers,
//! tool modes and the cache.

mod common;

use common::{ManualClock, NOON, fault_turn, ladder, request, text_turn, trace};
use opticlaw_models::replay::{Fault, ReplayServer};
use opticlaw_models::{
    ContextSource, Locality, ModelError, ModelRouter, Providers, Task, Tier, ToolMode,
};

fn router() -> ModelRouter {
    ModelRouter::new(ladder("http://127.0.0.1:9", 1_000)).unwrap()
}

#[test]
fn easy_task_goes_to_local_small_and_hard_task_to_cloud_primary() {
    let router = router();
    let easy = router
        .select(&Task::new("a", "alice", "chat", 0.2))
        .unwrap();
    assert_eq!(
        (easy.tier, easy.provider.as_str()),
        (Tier::LocalSmall, "ollama")
    );
    let hard = router
        .select(&Task::new("b", "alice", "plan", 0.8))
        .unwrap();
    assert_eq!(
        (hard.tier, hard.model.as_str()),
        (Tier::CloudPrimary, "gpt-4o")
    );
    assert_eq!(hard.temperature, 0.2, "hard tasks run cool");
    let route = router.route(&Task::new("b", "alice", "plan", 0.8));
    let tiers: Vec<_> = route.chain.iter().map(|s| s.tier).collect();
    assert_eq!(tiers, [Tier::CloudPrimary, Tier::CloudSecondary]);
    assert!(route.decisions[0].reason.contains("below complexity"));
}

#[test]
fn private_data_never_leaves_the_machine_unless_allowed() {
    let router = router();
    let mut task = Task::new("p", "alice", "plan", 0.9);
    task.private = true;
    let route = router.route(&task);
    assert!(route.chain.iter().all(|s| s.locality == Locality::Local));
    assert_eq!(route.chain[0].tier, Tier::LocalMedium, "best local effort");
    let cloud = route
        .decisions
        .iter()
        .find(|d| d.tier == "cloud_primary")
        .unwrap();
    assert_eq!(cloud.reason, "private data stays on local models");

    task.allow_private_cloud = true;
    assert_eq!(router.select(&task).unwrap().tier, Tier::CloudPrimary);
}

#[test]
fn read_only_context_with_no_money_keeps_to_free_local_models() {
    let router = router();
    let context = opticlaw_core::ExecutionContext::read_only("en-GB");
    let mut task = Task::from_context(&context, "alice", "plan", 0.8);
    task.est_input_tokens = 1_000;
    let route = router.route(&task);
    assert!(route.chain.iter().all(|s| s.locality == Locality::Local));
    let cloud = route
        .decisions
        .iter()
        .find(|d| d.tier == "cloud_primary")
        .unwrap();
    assert!(
        cloud.reason.contains("exceeds the task budget"),
        "{}",
        cloud.reason
    );
}

#[test]
fn daily_budget_cap_refuses_with_a_clear_message() {
    let mut config = ladder("http://127.0.0.1:9", 1_000);
    config.budget.per_user_daily_usd = Some(0.01);
    let clock = ManualClock::new(NOON);
    let router = ModelRouter::with_clock(config, clock.clock()).unwrap();
    router.record_spend("alice", 0.0095, NOON);
    let mut task = Task::new("b", "alice", "plan", 0.8);
    task.est_input_tokens = 2_000;
    let err = router.select(&task).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ModelError::Budget(_)));
    assert!(
        message.starts_with(
            "per-user daily (alice) budget reached: spent $0.0095 of $0.0100 on 2025-03-01 (UTC)"
        ),
        "{message}"
    );
    assert!(
        message.contains("models.budget.per_user_daily_usd"),
        "{message}"
    );
    // Another user, and the next day, are not capped.
    assert!(
        router
            .select(&Task {
                user_id: "bob".into(),
                ..task.clone()
            })
            .is_ok()
    );
    clock.advance(86_400_000);
    assert_eq!(router.select(&task).unwrap().tier, Tier::CloudPrimary);
}

#[test]
fn a_model_that_keeps_failing_in_a_domain_loses_that_domain_only() {
    let router = router();
    for _ in 0..8 {
        router.record_result("qwen2.5:1.5b", "email", false);
    }
    let email = router
        .select(&Task::new("e", "alice", "email", 0.3))
        .unwrap();
    assert_eq!(email.tier, Tier::LocalMedium);
    let chat = router
        .select(&Task::new("c", "alice", "chat", 0.3))
        .unwrap();
    assert_eq!(chat.tier, Tier::LocalSmall);
}

#[test]
fn missing_the_latency_slo_costs_a_rung_its_place() {
    let mut config = ladder("http://127.0.0.1:9", 1_000);
    config.tiers[0].typical_latency_ms = 200;
    config.tiers[1].typical_latency_ms = 4_000;
    let router = ModelRouter::new(config).unwrap();
    let mut task = Task::new("s", "alice", "chat", 0.5);
    task.latency_slo_ms = 1_000;
    let route = router.route(&task);
    let medium = route
        .decisions
        .iter()
        .find(|d| d.tier == "local_medium")
        .unwrap();
    assert!(!medium.allowed);
    assert!(medium.latency_penalty_usd >= 0.05, "{medium:?}");
    assert_eq!(route.chain[0].tier, Tier::CloudPrimary);
}

#[test]
fn tools_are_native_or_prompted_by_model() {
    let mut config = ladder("http://127.0.0.1:9", 1_000);
    config.tiers[0].native_tools = false;
    let router = ModelRouter::new(config).unwrap();
    let mut task = Task::new("t", "alice", "chat", 0.2);
    assert_eq!(router.select(&task).unwrap().tool_mode, ToolMode::None);
    task.needs_tools = true;
    assert_eq!(router.select(&task).unwrap().tool_mode, ToolMode::Prompted);
    task.complexity = 0.5;
    assert_eq!(router.select(&task).unwrap().tool_mode, ToolMode::Native);
}

#[tokio::test]
async fn prompted_tools_go_in_the_system_prompt_and_the_json_reply_becomes_a_call() {
    let server = ReplayServer::start(trace(vec![text_turn(
        "{\"tool\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}",
    )]))
    .await
    .unwrap();
    let mut config = ladder(&server.base_url(), 5_000);
    config.tiers[0].native_tools = false;
    let providers = Providers::from_config(&config).unwrap();
    let router = ModelRouter::new(config).unwrap();
    let mut task = Task::new("t", "alice", "chat", 0.2);
    task.needs_tools = true;
    let mut req = request("Weather in Oslo?");
    req.tools = vec![common::weather_tool()];
    let done = router
        .complete(&task, &req, &providers)
        .await
        .result
        .unwrap();
    assert_eq!(done.response.tool_calls[0].name, "get_weather");
    assert_eq!(done.response.tool_calls[0].arguments["city"], "Oslo");
    let body = &server.requests()[0].body;
    assert!(body.get("tools").is_none());
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("You are OptiClaw.\n\nYou can call one tool."),
        "{system}"
    );
    assert!(system.contains("get_weather"));
}

#[tokio::test]
async fn breaker_opens_after_failures_and_half_opens_on_the_next_request_after_cooldown() {
    let fail = || {
        fault_turn(Fault::Status {
            status: 503,
            retry_after_s: None,
            body: None,
        })
    };
    let server = ReplayServer::start(trace(vec![
        fail(),
        fail(),
        text_turn("cloud 1"),
        fail(),
        text_turn("cloud 2"),
        text_turn("local again"),
    ]))
    .await
    .unwrap();
    let config = ladder(&server.base_url(), 5_000);
    let cooldown = config.breaker.cooldown_ms as i64;
    let providers = Providers::from_config(&config).unwrap();
    let clock = ManualClock::new(NOON);
    let router = ModelRouter::with_clock(config, clock.clock()).unwrap();
    let task = Task::new("t", "alice", "chat", 0.2);
    let req = request("hello");

    let first = router.complete(&task, &req, &providers).await;
    assert_eq!(first.result.unwrap().response.text, "cloud 1");
    // Third failure in a row opens the breaker: medium (same provider) is skipped.
    let second = router
        .complete(&task, &request("hello again"), &providers)
        .await;
    assert_eq!(second.result.unwrap().response.text, "cloud 2");
    assert_eq!(second.usage.len(), 2);
    let route = router.route(&task);
    assert!(
        route.decisions[0]
            .reason
            .contains("circuit breaker for `ollama` is open")
    );
    assert_eq!(route.chain[0].tier, Tier::CloudPrimary);
    // Nothing changes while no request comes; the next request after the
    // cooldown is the half-open probe, and its success closes the breaker.
    clock.advance(cooldown);
    assert_eq!(router.route(&task).chain[0].tier, Tier::LocalSmall);
    let third = router
        .complete(&task, &request("and again"), &providers)
        .await;
    assert_eq!(third.result.unwrap().response.text, "local again");
    assert_eq!(router.breaker("ollama"), Default::default());
}

#[tokio::test]
async fn cached_reply_is_reused_until_a_source_it_read_changes() {
    let server = ReplayServer::start(opticlaw_models::replay::Trace {
        repeat: true,
        ..trace(vec![text_turn("Your dentist is on Wednesday.")])
    })
    .await
    .unwrap();
    let config = ladder(&server.base_url(), 5_000);
    let providers = Providers::from_config(&config).unwrap();
    let router = ModelRouter::new(config).unwrap();
    let mut task = Task::new("t", "alice", "chat", 0.2);
    task.context = vec![ContextSource {
        source_id: "calendar".into(),
        version: "v1".into(),
    }];
    let req = request("When is the dentist?");
    let one = router.complete(&task, &req, &providers).await;
    assert!(!one.result.unwrap().from_cache);
    let two = router.complete(&task, &req, &providers).await;
    assert!(two.result.unwrap().from_cache);
    assert_eq!(two.usage[0].outcome, "cache_hit");
    assert_eq!(server.request_count(), 1);
    assert_eq!(router.invalidate_source("calendar"), 1);
    let three = router.complete(&task, &req, &providers).await;
    assert!(!three.result.unwrap().from_cache);
    assert_eq!(server.request_count(), 2);
}
