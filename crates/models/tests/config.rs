//! The documented `[models]` TOML shape parses into `ModelsConfig`.

use opticlaw_models::{ModelRouter, ModelsConfig, Protocol, Tier};

#[derive(serde::Deserialize)]
struct File {
    models: ModelsConfig,
}

#[test]
fn documented_models_section_parses_and_builds_a_router() {
    let text = r#"
        [models]
        allow_private_cloud = false

        [[models.providers]]
        name = "ollama"
        protocol = "ollama"
        base_url = "http://127.0.0.1:11434"

        [[models.providers]]
        name = "openai"
        protocol = "openai"
        base_url = "https://api.openai.com"
        api_key_env = "OPENAI_API_KEY"

        [[models.tiers]]
        tier = "local_small"
        provider = "ollama"
        model = "qwen2.5:1.5b"
        capability = 0.35
        typical_latency_ms = 700
        max_tokens = 512

        [[models.tiers]]
        tier = "cloud_primary"
        provider = "openai"
        model = "gpt-4o"
        capability = 0.9

        [models.prices."gpt-4o"]
        input_per_mtok = 2.5
        output_per_mtok = 10.0

        [models.budget]
        per_user_daily_usd = 1.0
        daily_usd = 5.0

        [models.gate]
        min_confidence = 0.5

        [models.breaker]
        failure_threshold = 3
        cooldown_ms = 30000
    "#;
    let config = toml::from_str::<File>(text).unwrap().models;
    assert_eq!(config.providers[1].protocol, Protocol::Openai);
    assert_eq!(config.tiers[1].tier, Tier::CloudPrimary);
    assert_eq!(config.tiers[1].max_tokens, 1_024, "defaulted");
    assert_eq!(config.budget.per_user_daily_usd, Some(1.0));
    assert_eq!(config.gate.latency_usd_per_s, 0.001, "defaulted");
    assert_eq!(config.cache.capacity, 512, "defaulted");
    ModelRouter::new(config).unwrap();
}

#[test]
fn tier_naming_an_unknown_provider_is_refused() {
    let config: ModelsConfig = toml::from_str(
        r#"
        [[tiers]]
        tier = "local_small"
        provider = "nope"
        model = "m"
        capability = 0.5
        "#,
    )
    .unwrap();
    let err = ModelRouter::new(config).err().unwrap();
    assert_eq!(
        err.to_string(),
        "unknown provider `nope` in the model configuration"
    );
}
