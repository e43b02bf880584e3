//! The watermark: the event time before which every reading is taken to have arrived.
//!
//! Each source (a connector route) reports the newest event time it has delivered. The
//! watermark is the slowest *active* source's newest time minus the allowed lateness; a
//! source that has sent nothing for `idle_ms` of wall-clock time stops holding it back. When
//! every source is idle, event time is taken to move on with the wall clock from each
//! source's newest reading (after the idle timeout), so `for` timers still complete on a
//! quiet network, without assuming that device clocks match ours: a feed replaying hours-old
//! data is not overtaken. Before any reading arrives it does not move; it never goes back.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

const NONE: i64 = i64::MIN;

struct SourceMark {
    name: String,
    newest_event: i64,
    last_seen_wall: i64,
}

/// Shared between the connectors that feed readings and the workers that evaluate them.
pub struct Watermark {
    current: AtomicI64,
    sources: Mutex<Vec<SourceMark>>,
    lateness_ms: i64,
    idle_ms: i64,
}

/// A registered source's handle for reporting progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceId(usize);

impl Watermark {
    pub fn new(lateness_ms: i64, idle_ms: i64) -> Self {
        Watermark { current: AtomicI64::new(NONE), sources: Mutex::new(Vec::new()), lateness_ms, idle_ms }
    }

    pub fn lateness_ms(&self) -> i64 {
        self.lateness_ms
    }

    pub fn register(&self, name: &str) -> SourceId {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = sources.iter().position(|s| s.name == name) {
            return SourceId(i);
        }
        sources.push(SourceMark { name: name.to_owned(), newest_event: NONE, last_seen_wall: NONE });
        SourceId(sources.len() - 1)
    }

    /// A source delivered readings up to `newest_event` at wall-clock time `now`.
    /// Call once per batch, not per reading.
    pub fn observe(&self, source: SourceId, newest_event: i64, now: i64) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mark) = sources.get_mut(source.0) {
            mark.newest_event = mark.newest_event.max(newest_event);
            mark.last_seen_wall = now;
        }
        self.recompute(&sources, now);
    }

    /// A source has ended (a replayed file): it no longer holds event time back, as if it
    /// had been idle since it began.
    pub fn finish(&self, source: SourceId) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mark) = sources.get_mut(source.0) {
            mark.last_seen_wall = i64::MIN / 4;
        }
    }

    /// Re-evaluates idleness; call periodically (e.g. every second).
    pub fn tick(&self, now: i64) {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        self.recompute(&sources, now);
    }

    fn recompute(&self, sources: &[SourceMark], now: i64) {
        let seen = sources.iter().filter(|s| s.newest_event != NONE);
        let active = seen.clone().filter(|s| now - s.last_seen_wall < self.idle_ms).map(|s| s.newest_event).min();
        let candidate = match active {
            Some(slowest) => slowest.saturating_sub(self.lateness_ms),
            None => match seen.map(|s| s.newest_event.saturating_add(now - s.last_seen_wall - self.idle_ms)).max() {
                Some(newest) => newest.saturating_sub(self.lateness_ms),
                None => return,
            },
        };
        // Never ahead of the wall clock: one device whose clock runs fast (its readings still
        // within `max_future`) must not make every other sensor's timers and missing-data
        // checks run into the future, and their real-time readings late.
        let candidate = candidate.min(now.saturating_sub(self.lateness_ms));
        self.current.fetch_max(candidate, Ordering::Release);
    }

    /// Every reading with an event time before this has arrived (or is late).
    /// The input is complete (a recorded feed ended, or an operator says so): event time
    /// jumps to just past the newest reading seen, so every timer up to it is due at once
    /// instead of after the idle timeout and the allowed lateness. Later readings older than
    /// that are late. Returns the new watermark (`i64::MIN` before any reading).
    pub fn complete(&self) -> i64 {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(newest) = sources.iter().map(|s| s.newest_event).filter(|&t| t != NONE).max() {
            self.current.fetch_max(newest.saturating_add(1), Ordering::Release);
        }
        self.get()
    }

    pub fn get(&self) -> i64 {
        self.current.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowest_active_source_holds_the_watermark_and_idle_ones_do_not() {
        let w = Watermark::new(1_000, 10_000);
        let fast = w.register("fast");
        let slow = w.register("slow");
        w.observe(slow, 20_000, 100_000);
        w.observe(fast, 50_000, 100_000);
        assert_eq!(w.get(), 19_000);
        w.observe(fast, 60_000, 111_000);
        assert_eq!(w.get(), 59_000, "slow has been idle for 11 s");
    }

    #[test]
    fn it_never_goes_backwards() {
        let w = Watermark::new(0, 10_000);
        let a = w.register("a");
        w.observe(a, 100, 1_000);
        let b = w.register("b");
        w.observe(b, 50, 1_001);
        assert_eq!(w.get(), 100);
    }

    #[test]
    fn a_quiet_network_advances_with_the_wall_clock_after_the_idle_timeout() {
        let w = Watermark::new(5_000, 10_000);
        let a = w.register("a");
        // A feed running an hour behind the wall clock.
        w.observe(a, 100_000, 3_700_000);
        assert_eq!(w.get(), 95_000);
        w.tick(3_790_000);
        assert_eq!(w.get(), 100_000 + 80_000 - 5_000);
    }

    #[test]
    fn a_complete_input_is_decided_up_to_its_newest_reading_at_once() {
        let w = Watermark::new(3_600_000, 10_000);
        let (a, b) = (w.register("a"), w.register("b"));
        w.observe(a, 100_000, 8_000_000);
        w.observe(b, 7_300_000, 8_000_000);
        assert_eq!(w.get(), 100_000 - 3_600_000);
        assert_eq!(w.complete(), 7_300_001);
        w.observe(a, 200_000, 8_000_001);
        assert_eq!(w.get(), 7_300_001, "never back");
    }

    /// One device 9 minutes ahead of the clock (within `max_future`) while the others report
    /// in real time: event time stays with the wall clock, not with the fast device.
    #[test]
    fn a_device_ahead_of_the_clock_does_not_drag_event_time_into_the_future() {
        let w = Watermark::new(120_000, 30_000);
        let mqtt = w.register("mqtt");
        let now = 1_764_000_000_000;
        w.observe(mqtt, now, now);
        assert_eq!(w.get(), now - 120_000);
        w.observe(mqtt, now + 9 * 60_000, now + 1_000);
        assert_eq!(w.get(), now + 1_000 - 120_000, "the wall clock, not the fast device");
        w.tick(now + 61_000);
        assert_eq!(w.get(), now + 61_000 - 120_000);
    }

    #[test]
    fn nothing_moves_before_the_first_reading() {
        let w = Watermark::new(5_000, 10_000);
        w.register("a");
        w.tick(1_000_000_000);
        assert_eq!(w.get(), i64::MIN);
    }
}
