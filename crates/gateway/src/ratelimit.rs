//! Outbound rate limits as lazy token buckets: a bucket's level is computed
//! from the time elapsed since it was last used. Nothing refills on a timer,
//! so an idle gateway does no work at all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bucket's shape: `burst` tokens, refilled at `per_sec` tokens a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketSpec {
    pub burst: f64,
    pub per_sec: f64,
}

impl BucketSpec {
    /// `burst` tokens refilled at `per_sec` a second.
    pub const fn new(burst: f64, per_sec: f64) -> Self {
        Self { burst, per_sec }
    }
}

/// One lazy token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    spec: BucketSpec,
    tokens: f64,
    updated: Instant,
    /// A server-imposed pause (HTTP 429) ending at this instant.
    blocked_until: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(spec: BucketSpec, now: Instant) -> Self {
        Self {
            spec,
            tokens: spec.burst,
            updated: now,
            blocked_until: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.spec.per_sec).min(self.spec.burst);
        self.updated = now;
    }

    /// How long until a token is available (zero when one is now).
    pub fn wait_time(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let blocked = self
            .blocked_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let refill = if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.spec.per_sec)
        };
        blocked.max(refill)
    }

    /// Takes a token, or says how long to wait for one.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let wait = self.wait_time(now);
        if wait.is_zero() {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Empties the bucket until `now + delay` (a server's `retry_after`).
    pub fn block_for(&mut self, now: Instant, delay: Duration) {
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
        let until = now + delay;
        self.blocked_until = Some(self.blocked_until.map_or(until, |u| u.max(until)));
    }
}

/// Keyed buckets: one global bucket per platform plus one per conversation.
#[derive(Debug)]
pub struct RateLimiter {
    global: BucketSpec,
    per_key: BucketSpec,
    buckets: Mutex<Buckets>,
}

/// The buckets, and the size at which idle ones are next swept out.
#[derive(Debug)]
struct Buckets {
    map: HashMap<String, TokenBucket>,
    sweep_at: usize,
}

/// Fewest buckets before idle ones are swept out.
const SWEEP_MIN: usize = 4096;

const GLOBAL_KEY: &str = "\u{0}global";
/// Buckets idle this long are full again and are forgotten on the next use.
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl RateLimiter {
    /// A limiter with the given global and per-conversation shapes.
    pub fn new(global: BucketSpec, per_key: BucketSpec) -> Self {
        Self {
            global,
            per_key,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: SWEEP_MIN,
            }),
        }
    }

    /// Takes a token from both the global and the conversation's bucket, or
    /// takes none and returns the longer of the two waits.
    pub fn try_acquire(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut guard = self.buckets.lock().expect("limiter lock");
        let Buckets {
            map: buckets,
            sweep_at,
        } = &mut *guard;
        if buckets.len() > *sweep_at {
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < FORGET_AFTER);
            // Sweep again only once the map has doubled: with many active
            // conversations a sweep every call would cost O(n) per send.
            *sweep_at = SWEEP_MIN.max(buckets.len() * 2);
        }
        let global_wait = buckets
            .entry(GLOBAL_KEY.to_owned())
            .or_insert_with(|| TokenBucket::new(self.global, now))
            .wait_time(now);
        let key_wait = buckets
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::new(self.per_key, now))
            .wait_time(now);
        let wait = global_wait.max(key_wait);
        if !wait.is_zero() {
            return Err(wait);
        }
        for k in [GLOBAL_KEY, key] {
            let taken = buckets.get_mut(k).map(|b| b.try_take(now));
            debug_assert!(matches!(taken, Some(Ok(()))));
        }
        Ok(())
    }

    /// Applies a server's `retry_after` to a conversation (or, with `global`,
    /// to the whole platform).
    pub fn block(&self, key: &str, global: bool, now: Instant, delay: Duration) {
        let buckets = &mut self.buckets.lock().expect("limiter lock").map;
        let (k, spec) = if global {
            (GLOBAL_KEY, self.global)
        } else {
            (key, self.per_key)
        };
        buckets
            .entry(k.to_owned())
            .or_insert_with(|| TokenBucket::new(spec, now))
            .block_for(now, delay);
    }
}

/// Conservative defaults per platform, from each platform's published limits:
/// Telegram ~30 msg/s per bot and ~1 msg/s per chat; Slack `chat.postMessage`
/// ~1 msg/s per channel; Discord 50 req/s global, ~5 per 5 s per channel;
/// WhatsApp ~80 msg/s per number and a pair limit of ~1 per 6 s per user
/// (bursts tolerated); Matrix homeserver defaults near 0.2/s with burst 10.
pub fn default_limits(platform: crate::Platform) -> (BucketSpec, BucketSpec) {
    use crate::Platform::*;
    match platform {
        Telegram => (BucketSpec::new(30.0, 30.0), BucketSpec::new(3.0, 1.0)),
        Slack => (BucketSpec::new(10.0, 10.0), BucketSpec::new(3.0, 1.0)),
        Discord => (BucketSpec::new(50.0, 50.0), BucketSpec::new(5.0, 1.0)),
        WhatsApp => (BucketSpec::new(80.0, 80.0), BucketSpec::new(5.0, 1.0)),
        Matrix => (BucketSpec::new(10.0, 5.0), BucketSpec::new(10.0, 1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_lazily_from_elapsed_time() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(BucketSpec::new(2.0, 1.0), t0);
        assert!(bucket.try_take(t0).is_ok());
        assert!(bucket.try_take(t0).is_ok());
        let wait = bucket.try_take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(bucket.try_take(t0 + Duration::from_millis(999)).is_err());
        assert!(bucket.try_take(t0 + Duration::from_secs(1)).is_ok());
        // a long idle period refills only up to the burst
        let later = t0 + Duration::from_secs(3600);
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn server_retry_after_blocks_until_it_passes() {
        let t0 = Instant::now();
        let limiter = RateLimiter::new(BucketSpec::new(10.0, 10.0), BucketSpec::new(10.0, 10.0));
        limiter.block("chat", false, t0, Duration::from_secs(5));
        let wait = limiter.try_acquire("chat", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(5));
        assert!(limiter.try_acquire("other", t0).is_ok());
        assert!(
            limiter
                .try_acquire("chat", t0 + Duration::from_secs(5))
                .is_ok()
        );
    }
}
