//! The value gate: a model is called only when
//! `expected_gain > cost + latency_penalty`, and every decision is kept as a
//! [`GateDecision`] so "why was this model called?" has an answer.

use serde::{Deserialize, Serialize};

use crate::config::GateConfig;

/// The inputs and the verdict of one gate evaluation, for one candidate
/// model. Persisted in `model_gate_decisions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub task_id: String,
    pub user_id: String,
    pub domain: String,
    pub tier: String,
    pub provider: String,
    pub model: String,
    pub complexity: f32,
    /// The model's effective capability for this domain (prior + history).
    pub capability: f32,
    /// Estimated chance the model answers well.
    pub p_success: f64,
    /// `value_usd * p_success`.
    pub expected_gain_usd: f64,
    pub est_cost_usd: f64,
    pub est_latency_ms: u64,
    pub latency_penalty_usd: f64,
    pub allowed: bool,
    /// In words: why it was allowed or refused.
    pub reason: String,
    pub at_ms: i64,
}

/// Inputs to [`evaluate`].
#[derive(Debug, Clone, Copy)]
pub struct GateInputs {
    pub value_usd: f64,
    pub complexity: f32,
    pub capability: f32,
    pub est_cost_usd: f64,
    pub est_latency_ms: u64,
    /// 0: no SLO.
    pub latency_slo_ms: u64,
}

/// The gate's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateVerdict {
    pub p_success: f64,
    pub expected_gain_usd: f64,
    pub latency_penalty_usd: f64,
    pub allowed: bool,
}

/// Chance of success from the margin between capability and complexity: a
/// logistic curve, 0.5 when they are equal, ~0.98 a margin of 0.5 above.
pub fn p_success(capability: f32, complexity: f32) -> f64 {
    let margin = f64::from(capability - complexity);
    1.0 / (1.0 + (-8.0 * margin).exp())
}

/// Evaluates `expected_gain > cost + latency_penalty`.
pub fn evaluate(inputs: &GateInputs, config: &GateConfig) -> GateVerdict {
    let p = p_success(inputs.capability, inputs.complexity);
    let expected_gain_usd = inputs.value_usd * p;
    let mut latency_penalty_usd = config.latency_usd_per_s * inputs.est_latency_ms as f64 / 1000.0;
    if inputs.latency_slo_ms > 0 && inputs.est_latency_ms > inputs.latency_slo_ms {
        latency_penalty_usd += config.slo_miss_usd;
    }
    GateVerdict {
        p_success: p,
        expected_gain_usd,
        latency_penalty_usd,
        allowed: expected_gain_usd > inputs.est_cost_usd + latency_penalty_usd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> GateInputs {
        GateInputs {
            value_usd: 0.05,
            complexity: 0.3,
            capability: 0.6,
            est_cost_usd: 0.0,
            est_latency_ms: 800,
            latency_slo_ms: 0,
        }
    }

    #[test]
    fn free_capable_local_model_passes() {
        assert!(evaluate(&inputs(), &GateConfig::default()).allowed);
    }

    #[test]
    fn cost_above_expected_gain_is_refused() {
        let v = evaluate(
            &GateInputs {
                est_cost_usd: 0.2,
                ..inputs()
            },
            &GateConfig::default(),
        );
        assert!(!v.allowed);
    }

    #[test]
    fn missing_the_latency_slo_is_penalized() {
        let v = evaluate(
            &GateInputs {
                est_latency_ms: 5_000,
                latency_slo_ms: 1_000,
                ..inputs()
            },
            &GateConfig::default(),
        );
        assert!(v.latency_penalty_usd > 0.05);
        assert!(!v.allowed);
    }
}
