//! One one-shot timer for an exact wall-clock instant.
//!
//! On Linux it is a `timerfd` on `CLOCK_REALTIME` armed with an absolute
//! time: the kernel wakes the process exactly once, at the due instant, even
//! across a suspend or a clock change (`TFD_TIMER_CANCEL_ON_SET` wakes it
//! early so it can re-read the clock). Elsewhere, or if the timerfd cannot
//! be made, a tokio sleep stands in.

use chrono::{DateTime, Utc};

/// Waits until `wake_at_ms` (milliseconds since the Unix epoch) or a wall
/// clock change, whichever comes first. Callers re-check the clock after.
pub async fn sleep_until_wall_clock(wake_at_ms: i64) {
    #[cfg(target_os = "linux")]
    {
        match linux::TimerFd::at(wake_at_ms) {
            Ok(timer) => return timer.wait().await,
            Err(err) => tracing::warn!(%err, "timerfd unavailable, falling back to a tokio timer"),
        }
    }
    let now = Utc::now().timestamp_millis();
    let delay = u64::try_from(wake_at_ms - now).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
}

/// `wake_at_ms` as a readable time, for logs.
pub fn shown(wake_at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(wake_at_ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| wake_at_ms.to_string())
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::{AsFd, AsRawFd, RawFd};

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{
        ClockId, Expiration, TimerFd as NixTimerFd, TimerFlags, TimerSetTimeFlags,
    };
    use tokio::io::unix::AsyncFd;

    struct Fd(NixTimerFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    pub struct TimerFd(AsyncFd<Fd>);

    impl TimerFd {
        pub fn at(wake_at_ms: i64) -> std::io::Result<Self> {
            let timer = NixTimerFd::new(
                ClockId::CLOCK_REALTIME,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            // An absolute time of 0 would disarm the timer: fire a past
            // instant as soon as possible instead.
            let wake_at_ms = wake_at_ms.max(1);
            let when = TimeSpec::new(wake_at_ms / 1000, (wake_at_ms % 1000) * 1_000_000);
            timer.set(
                Expiration::OneShot(when),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
            )?;
            // SAFETY: `Fd` owns the timerfd, so the descriptor stays open and
            // unchanged for as long as the `AsyncFd` holds it.
            let registered = unsafe { AsyncFd::register(Fd(timer)) };
            Ok(Self(registered.map_err(std::io::Error::from)?))
        }

        pub async fn wait(self) {
            loop {
                let Ok(mut ready) = self.0.readable().await else {
                    return;
                };
                let mut expirations = [0u8; 8];
                match nix::unistd::read(self.0.get_ref().0.as_fd(), &mut expirations) {
                    // Fired, or the clock was set (ECANCELED): either way the
                    // caller re-reads the clock and the store.
                    Ok(_) | Err(nix::errno::Errno::ECANCELED) => return,
                    Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                    Err(_) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_at_the_wall_clock_instant_not_before() {
        let start = Utc::now().timestamp_millis();
        sleep_until_wall_clock(start + 150).await;
        let woke = Utc::now().timestamp_millis();
        assert!(woke >= start + 150, "woke {}ms early", start + 150 - woke);
        assert!(woke < start + 5_000, "woke {}ms late", woke - start - 150);
    }

    #[tokio::test]
    async fn a_past_instant_fires_at_once() {
        let start = std::time::Instant::now();
        sleep_until_wall_clock(1_000).await;
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
