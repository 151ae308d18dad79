//! The model path of the decomposer against a real HTTP provider on
//! loopback (the models crate's replay server speaking Ollama): the exact
//! requests sent (the TaskGraph schema as the `submit_plan` tool, the
//! repair turn naming the node), validation, and accounting in a real
//! SQLite store.
//!
//! Re-record the expected requests with
//! `OPTICLAW_BLESS=1 cargo test -p opticlaw-planner --test llm_planning`
//! (then review the diff).

use std::path::PathBuf;

use opticlaw_models::replay::{ReplayServer, ScriptedCall, ScriptedReply, Trace, Turn};
use opticlaw_models::{
    ModelRouter, ModelsConfig, Protocol, ProviderConfig, Providers, Tier, TierConfig,
};
use opticlaw_planner::{
    Decomposed, Goal, LlmDecomposer, PlanError, Planned, Planner, SelfModel, decision, llm,
};
use opticlaw_store::{Store, Synchronous};
use serde_json::{Value, json};

fn config(base_url: &str) -> ModelsConfig {
    ModelsConfig {
        providers: vec![ProviderConfig {
            name: "ollama".into(),
            protocol: Protocol::Ollama,
            base_url: base_url.into(),
            api_key_env: None,
            api_key_file: None,
            api_key_keyring: None,
            locality: None,
            timeout_ms: 5_000,
        }],
        tiers: vec![TierConfig {
            tier: Tier::LocalSmall,
            provider: "ollama".into(),
            model: "qwen2.5:7b".into(),
            capability: 0.9,
            typical_latency_ms: 500,
            max_tokens: 1024,
            native_tools: true,
            temperature: 0.7,
        }],
        ..Default::default()
    }
}

fn plan_turn(arguments: Value) -> Turn {
    Turn {
        protocol: Some(Protocol::Ollama),
        input: None,
        request: None,
        reply: ScriptedReply {
            tool_calls: vec![ScriptedCall {
                id: "call_1".into(),
                name: llm::PLAN_TOOL.into(),
                arguments,
            }],
            ..Default::default()
        },
        fault: None,
    }
}

fn node(id: &str, kind: &str, deps: &[&str], params: Value) -> Value {
    json!({"id": id, "kind": kind, "deps": deps,
           "policy": {"requires_approval": false}, "budget": {"max_ms": 0, "max_cost": 0},
           "params": params})
}

/// A plan whose reply node depends on a node that does not exist.
fn dangling_plan() -> Value {
    json!({"task_id": "00000000-0000-7000-8000-000000000000", "goal": "trip", "nodes": [
        node("weather", "tool", &[], json!({"tool": "http", "scope": "get", "resource": "https://wttr.in/Lisbon", "args": {"url": "https://wttr.in/Lisbon"}})),
        node("reply", "message", &["forecast"], json!({"text": "{weather.output}"})),
    ]})
}

fn good_plan() -> Value {
    json!({"task_id": "00000000-0000-7000-8000-000000000000", "goal": "trip", "nodes": [
        node("weather", "tool", &[], json!({"tool": "http", "scope": "get", "resource": "https://wttr.in/Lisbon", "args": {"url": "https://wttr.in/Lisbon"}})),
        node("advise", "reason", &["weather"], json!({"prompt": "What should I pack?"})),
        node("reply", "message", &["advise"], json!({"text": "{advise.output}"})),
    ]})
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares the bodies the server received with the golden file (or
/// rewrites it under `OPTICLAW_BLESS`).
fn assert_requests_match(server: &ReplayServer, file: &str) {
    let received: Vec<Value> = server.requests().into_iter().map(|r| r.body).collect();
    let path = golden(file);
    if std::env::var_os("OPTICLAW_BLESS").is_some() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&received).unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(received.len(), expected.len(), "number of model calls");
    for (i, (got, want)) in received.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "request {i} differs from {file}");
    }
}

fn trace(turns: Vec<Turn>) -> Trace {
    Trace {
        name: "planner".into(),
        description: String::new(),
        repeat: false,
        turns,
    }
}

/// Plans `goal` with a model server that answers with `plans`, one per
/// call; returns the result and the server (for the requests it got).
async fn plan_with(plans: Vec<Value>, goal: &Goal) -> (Planned, ReplayServer) {
    let server = ReplayServer::start(trace(plans.into_iter().map(plan_turn).collect()))
        .await
        .unwrap();
    let models = config(&server.base_url());
    let router = ModelRouter::new(models.clone()).unwrap();
    let providers = Providers::from_config(&models).unwrap();
    let llm = LlmDecomposer {
        router: &router,
        providers: &providers,
    };
    let planned = Planner::with_defaults()
        .plan(goal, &SelfModel::default(), Some(&llm))
        .await;
    (planned, server)
}

#[tokio::test]
async fn invalid_plan_gets_one_repair_naming_the_node_then_is_accounted() {
    let goal = Goal::from_user("evt-42", "alice", "what should I pack for Lisbon tomorrow?");
    let (planned, server) = plan_with(vec![dangling_plan(), good_plan()], &goal).await;

    let Ok(Decomposed::Graph(graph)) = &planned.result else {
        panic!("expected a plan, got {:?}", planned.result);
    };
    let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["weather", "advise", "reply"]);
    assert_ne!(
        graph.task_id.to_string(),
        "00000000-0000-7000-8000-000000000000",
        "the task id is ours"
    );
    // The model's policies are ignored: the risk assessor set them.
    assert!(graph.nodes.iter().all(|n| n.policy.trust_tier.is_some()));
    assert!(
        graph.nodes[1].budget.max_cost > 0.0,
        "the reason node gets model money"
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0].body;
    assert_eq!(first["tools"][0]["function"]["name"], llm::PLAN_TOOL);
    assert_eq!(
        first["tools"][0]["function"]["parameters"],
        llm::task_graph_schema()
    );
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/task_graph.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        llm::task_graph_schema(),
        on_disk,
        "the request carries the checked-in schema"
    );
    let repair = requests[1].body["messages"].to_string();
    assert!(
        repair.contains(r#"node \"reply\" depends on \"forecast\""#),
        "{repair}"
    );
    assert_requests_match(&server, "plan_repair_requests.json");

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        &dir.path().join("t.db"),
        Synchronous::Normal,
        &[
            opticlaw_planner::COMPONENT,
            opticlaw_store::Component {
                name: "models",
                migrations: opticlaw_models::accounting::MIGRATIONS,
            },
        ],
    )
    .unwrap();
    planned.persist(store.connection(), 1_000).unwrap();
    let calls: i64 = store
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM model_usage WHERE domain = 'plan'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(calls, 2, "both calls are accounted");
    let records = decision::for_request(store.connection(), "evt-42").unwrap();
    assert!(records[0].decision.decision.starts_with("plan by model"));
    assert!(
        records[0].decision.why.contains("after one repair"),
        "{:?}",
        records[0]
    );
}

#[tokio::test]
async fn a_second_invalid_plan_is_a_clear_failure() {
    let goal = Goal::from_user("evt-43", "alice", "plan my week");
    let (planned, server) = plan_with(vec![dangling_plan(), dangling_plan()], &goal).await;
    match &planned.result {
        Err(PlanError::InvalidPlan { first, second }) => {
            assert!(first.contains("\"reply\""), "{first}");
            assert!(second.contains("\"forecast\""), "{second}");
        }
        other => panic!("expected InvalidPlan, got {other:?}"),
    }
    assert_eq!(server.request_count(), 2, "exactly one repair round-trip");
    assert_eq!(planned.decisions.last().unwrap().stage, "refuse");
}

#[tokio::test]
async fn a_tool_outside_the_list_is_refused_by_validation() {
    let bad = json!({"task_id": "00000000-0000-7000-8000-000000000000", "goal": "x", "nodes": [
        node("wipe", "tool", &[], json!({"tool": "disk", "scope": "format", "resource": "/", "args": {}})),
    ]});
    let goal = Goal::from_user("e", "alice", "free some space");
    let (planned, _server) = plan_with(vec![bad.clone(), bad], &goal).await;
    let error = planned.result.unwrap_err().to_string();
    assert!(
        error.contains("node \"wipe\" uses tool \"disk\""),
        "{error}"
    );
}
