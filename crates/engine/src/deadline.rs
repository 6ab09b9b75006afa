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
    /// Units of work [`check_after_work`] may still count before it reads the clock again.
    static UNCHECKED: Cell<u32> = const { Cell::new(0) };
}

/// Units of work between two clock reads of [`check_after_work`]. A unit is small (a list
/// element, a substitution), and work that can be long inside one unit (a JMESPath search)
/// checks the clock itself; reading the clock for every unit was about 60 reads per Pod
/// Security review.
const UNITS_PER_CLOCK_READ: u32 = 32;

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
        UNCHECKED.with(|u| u.set(0));
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
        // The first unit of work under a new deadline reads the clock.
        UNCHECKED.with(|u| u.set(0));
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

/// Counts one unit of work and answers like [`check`], reading the clock only every
/// [`UNITS_PER_CLOCK_READ`] units: the first unit under a deadline reads it, and once the
/// deadline has passed every later unit does, so a passed deadline is seen at once and keeps
/// being seen.
pub fn check_after_work() -> Result<(), String> {
    let Some(deadline) = DEADLINE.with(Cell::get) else {
        return Ok(());
    };
    let unchecked = UNCHECKED.with(Cell::get);
    if unchecked > 0 {
        UNCHECKED.with(|u| u.set(unchecked - 1));
        return Ok(());
    }
    if Instant::now() >= deadline {
        return Err(EXPIRED_MESSAGE.to_owned());
    }
    UNCHECKED.with(|u| u.set(UNITS_PER_CLOCK_READ - 1));
    Ok(())
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
    fn work_under_a_passed_deadline_fails_at_its_first_unit_and_every_later_one() {
        let _guard = scope(Instant::now());
        for unit in 0..3 * UNITS_PER_CLOCK_READ {
            assert_eq!(
                check_after_work(),
                Err(EXPIRED_MESSAGE.to_owned()),
                "unit {unit}"
            );
        }
    }

    #[test]
    fn work_reads_the_clock_once_per_units_per_clock_read() {
        // Half a second leaves the first unit room to run before the deadline on a busy
        // machine (a test thread can be descheduled for tens of milliseconds).
        let soon = Instant::now() + Duration::from_millis(500);
        let _guard = scope(soon);
        // The first unit read the clock before the deadline; the next ones do not read it.
        assert_eq!(check_after_work(), Ok(()));
        std::thread::sleep(
            soon.saturating_duration_since(Instant::now()) + Duration::from_millis(10),
        );
        let unread = (1..UNITS_PER_CLOCK_READ)
            .filter(|_| check_after_work().is_ok())
            .count();
        assert_eq!(unread, (UNITS_PER_CLOCK_READ - 1) as usize);
        assert_eq!(check_after_work(), Err(EXPIRED_MESSAGE.to_owned()));
    }

    #[test]
    fn a_new_deadline_is_read_at_its_first_unit() {
        let _outer = scope(Instant::now() + Duration::from_secs(3600));
        assert_eq!(check_after_work(), Ok(()));
        let _inner = scope(Instant::now());
        assert_eq!(check_after_work(), Err(EXPIRED_MESSAGE.to_owned()));
    }

    #[test]
    fn without_a_deadline_work_never_expires() {
        assert!((0..100).all(|_| check_after_work().is_ok()));
    }

    #[test]
    fn the_ticker_reads_the_clock_every_1024_ticks() {
        let _guard = scope(Instant::now());
        let mut ticker = Ticker::default();
        let first = (1..=1024).find(|_| ticker.tick());
        assert_eq!(first, Some(1024));
    }
}
