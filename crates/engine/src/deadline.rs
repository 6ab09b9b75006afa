//! The time an evaluation may take, checked inside the engine's long loops (foreach elements,
//! JMESPath steps, pattern walks, substitution passes) so that work abandoned by its caller
//! stops soon after, instead of running to completion on a thread nobody waits for.
//!
//! The engine is synchronous and takes no clock argument through its many layers, so the
//! deadline lives in a thread-local set by the caller around one evaluation ([`scope`]).
//! Without one, nothing expires (the CLI, tests).

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The message of every error a passed deadline causes (metrics and callers match on it).
pub const EXPIRED_MESSAGE: &str = "evaluation deadline exceeded";

/// Restores the previous deadline of this thread when dropped.
#[derive(Debug)]
#[must_use = "the deadline holds only while the guard lives"]
pub struct DeadlineGuard {
    previous: Option<Instant>,
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
    }
}

/// Sets this thread's deadline until the returned guard is dropped. An earlier deadline
/// already in force is kept.
pub fn scope(deadline: Instant) -> DeadlineGuard {
    DEADLINE.with(|d| {
        let previous = d.get();
        let effective = match previous {
            Some(earlier) if earlier < deadline => earlier,
            _ => deadline,
        };
        d.set(Some(effective));
        DeadlineGuard { previous }
    })
}

/// Whether this thread's deadline has passed (never, without one).
pub fn expired() -> bool {
    DEADLINE.with(|d| d.get().is_some_and(|deadline| Instant::now() >= deadline))
}

/// `Err` with [`EXPIRED_MESSAGE`] once the deadline has passed.
pub fn check() -> Result<(), String> {
    if expired() {
        Err(EXPIRED_MESSAGE.to_owned())
    } else {
        Ok(())
    }
}

/// Counts work and looks at the clock only every `EVERY` units, so a hot loop pays for a
/// counter increment, not a clock read.
#[derive(Debug, Default)]
pub struct Ticker {
    count: u32,
}

impl Ticker {
    const EVERY: u32 = 1024;

    /// Counts one unit; `true` once the deadline has passed (checked every 1024 units).
    pub fn tick(&mut self) -> bool {
        self.count = self.count.wrapping_add(1);
        self.count.is_multiple_of(Self::EVERY) && expired()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn without_a_deadline_nothing_expires() {
        assert!(!expired());
        assert!(check().is_ok());
    }

    #[test]
    fn a_passed_deadline_expires_and_the_guard_restores_the_previous_one() {
        let later = Instant::now() + Duration::from_secs(3600);
        let _outer = scope(later);
        assert!(!expired());
        {
            let _inner = scope(Instant::now());
            assert!(expired());
            assert_eq!(check(), Err(EXPIRED_MESSAGE.to_owned()));
        }
        assert!(!expired(), "the outer deadline is back");
    }

    #[test]
    fn a_later_inner_deadline_does_not_extend_an_earlier_one() {
        let _outer = scope(Instant::now());
        let _inner = scope(Instant::now() + Duration::from_secs(3600));
        assert!(expired());
    }

    #[test]
    fn the_ticker_reads_the_clock_every_1024_ticks() {
        let _guard = scope(Instant::now());
        let mut ticker = Ticker::default();
        let first = (1..=1024).find(|_| ticker.tick());
        assert_eq!(first, Some(1024));
    }
}
