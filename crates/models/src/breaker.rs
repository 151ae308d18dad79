//! A circuit breaker per provider, decided from stored timestamps.
//!
//! There is no timer: whether a breaker is open, half-open or closed is
//! computed when the next request asks ([`Breaker::check`]), from the
//! failure count and the instants recorded at the last failures. So an idle
//! daemon never wakes for a breaker, and the state survives a restart when
//! the fields are persisted (`model_breakers`).

use serde::{Deserialize, Serialize};

/// Breaker tuning (`[models.breaker]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an opened breaker refuses requests before one probe.
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            cooldown_ms: 30_000,
        }
    }
}

/// What the breaker says about the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Refused until `until_ms`.
    Open { until_ms: i64 },
    /// The cooldown is over: this one request is a probe; others wait for
    /// its outcome.
    HalfOpen,
}

/// One provider's breaker: only timestamps and a counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub consecutive_failures: u32,
    /// Refuse requests until this instant (ms since the epoch); 0 when closed.
    pub open_until_ms: i64,
    /// When the current half-open probe was let through; 0 when none.
    pub probe_started_ms: i64,
}

impl Breaker {
    /// Decides the state for a request at `now_ms`. A half-open answer
    /// records the probe, so a second request in the same window is refused
    /// until the probe reports (or a whole cooldown passes without a report).
    pub fn check(&mut self, now_ms: i64, config: &BreakerConfig) -> BreakerState {
        if self.open_until_ms == 0 {
            return BreakerState::Closed;
        }
        if now_ms < self.open_until_ms {
            return BreakerState::Open {
                until_ms: self.open_until_ms,
            };
        }
        let probe_pending = self.probe_started_ms != 0
            && now_ms < self.probe_started_ms + config.cooldown_ms as i64;
        if probe_pending {
            return BreakerState::Open {
                until_ms: self.probe_started_ms + config.cooldown_ms as i64,
            };
        }
        self.probe_started_ms = now_ms;
        BreakerState::HalfOpen
    }

    /// The state at `now_ms`, without taking a probe slot.
    pub fn peek(&self, now_ms: i64, config: &BreakerConfig) -> BreakerState {
        self.clone().check(now_ms, config)
    }

    /// A call succeeded: close.
    pub fn on_success(&mut self) {
        *self = Self::default();
    }

    /// A call failed at `now_ms`. `retry_after_ms` (from a 429) opens the
    /// breaker for at least that long at once.
    pub fn on_failure(&mut self, now_ms: i64, retry_after_ms: Option<u64>, config: &BreakerConfig) {
        self.consecutive_failures += 1;
        let was_probe = self.probe_started_ms != 0;
        self.probe_started_ms = 0;
        let mut until = 0;
        if was_probe || self.consecutive_failures >= config.failure_threshold {
            until = now_ms + config.cooldown_ms as i64;
        }
        if let Some(after) = retry_after_ms {
            until = until.max(now_ms + after as i64);
        }
        if until > 0 {
            self.open_until_ms = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: BreakerConfig = BreakerConfig {
        failure_threshold: 2,
        cooldown_ms: 1_000,
    };

    #[test]
    fn opens_after_threshold_and_half_opens_on_the_next_request_after_cooldown() {
        let mut b = Breaker::default();
        b.on_failure(100, None, &CONFIG);
        assert_eq!(b.check(150, &CONFIG), BreakerState::Closed);
        b.on_failure(200, None, &CONFIG);
        assert_eq!(
            b.check(300, &CONFIG),
            BreakerState::Open { until_ms: 1_200 }
        );
        assert_eq!(b.check(1_200, &CONFIG), BreakerState::HalfOpen);
        // A second request while the probe is out is refused.
        assert!(matches!(b.check(1_250, &CONFIG), BreakerState::Open { .. }));
        b.on_success();
        assert_eq!(b.check(1_300, &CONFIG), BreakerState::Closed);
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cooldown() {
        let mut b = Breaker::default();
        b.on_failure(0, None, &CONFIG);
        b.on_failure(0, None, &CONFIG);
        assert_eq!(b.check(1_000, &CONFIG), BreakerState::HalfOpen);
        b.on_failure(1_010, None, &CONFIG);
        assert_eq!(
            b.check(1_500, &CONFIG),
            BreakerState::Open { until_ms: 2_010 }
        );
    }

    #[test]
    fn retry_after_opens_at_once_for_that_long() {
        let mut b = Breaker::default();
        b.on_failure(0, Some(5_000), &CONFIG);
        assert_eq!(
            b.check(4_999, &CONFIG),
            BreakerState::Open { until_ms: 5_000 }
        );
        assert_eq!(b.check(5_000, &CONFIG), BreakerState::HalfOpen);
    }
}
