//! The work queue of the generate controller: deduplicated, fair between policies,
//! rate-limited, with a growing delay before each retry of a failing key.
//!
//! * A key that is waiting is not added twice; a key added while a worker holds it runs once
//!   more after that worker is done (the change it announces may have come too late for it).
//! * Keys wait in one line per group (the policy), and groups take turns: a policy with
//!   thousands of triggers cannot hold back the others.
//! * A token bucket bounds how many keys start per second, so a resync cannot flood the API
//!   server.
//! * A failed key comes back after `base_backoff · 2^(failures-1)`, at most `max_backoff`; a
//!   success forgets its failures.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A key that belongs to a group that takes turns with the others.
pub trait Grouped: Clone + Eq + Hash + Ord {
    /// The group this key waits in (the policy).
    fn group(&self) -> &str;
}

/// Limits of the queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueConfig {
    /// Keys started per second, on average.
    pub rate_per_second: f64,
    /// Keys that may start at once after a quiet time.
    pub burst: f64,
    /// Delay before the first retry.
    pub base_backoff: Duration,
    /// Longest delay before a retry.
    pub max_backoff: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            rate_per_second: 50.0,
            burst: 100.0,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// How a worker's turn with a key ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done: forget its failures.
    Done,
    /// Failed: try again after the backoff.
    Retry,
}

#[derive(Debug)]
struct State<K> {
    lines: BTreeMap<String, VecDeque<K>>,
    turns: VecDeque<String>,
    waiting: HashSet<K>,
    active: HashSet<K>,
    again: HashSet<K>,
    delayed: BTreeMap<(Instant, u64), K>,
    delayed_at: HashMap<K, (Instant, u64)>,
    failures: HashMap<K, u32>,
    tokens: f64,
    refilled: Instant,
    sequence: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
    config: QueueConfig,
}

impl<K: Grouped> WorkQueue<K> {
    /// An empty queue with a full bucket.
    pub fn new(config: QueueConfig) -> Self {
        let config = QueueConfig {
            rate_per_second: config.rate_per_second.max(0.001),
            burst: config.burst.max(1.0),
            ..config
        };
        WorkQueue {
            state: Mutex::new(State {
                lines: BTreeMap::new(),
                turns: VecDeque::new(),
                waiting: HashSet::new(),
                active: HashSet::new(),
                again: HashSet::new(),
                delayed: BTreeMap::new(),
                delayed_at: HashMap::new(),
                failures: HashMap::new(),
                tokens: config.burst,
                refilled: Instant::now(),
                sequence: 0,
            }),
            ready: Notify::new(),
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` unless it already waits; a key waiting for a retry is queued at once (a
    /// new change may have fixed what failed).
    pub fn add(&self, key: K) {
        let mut state = self.lock();
        if state.active.contains(&key) {
            state.again.insert(key);
            return;
        }
        if let Some(at) = state.delayed_at.remove(&key) {
            state.delayed.remove(&at);
        }
        push(&mut state, key);
        drop(state);
        self.ready.notify_one();
    }

    /// Keys waiting or delayed (not those being worked on).
    pub fn depth(&self) -> usize {
        let state = self.lock();
        state.waiting.len() + state.delayed.len()
    }

    /// How many times in a row `key` failed.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to work on, once one is due and the rate allows it. The caller must call
    /// [`WorkQueue::done`] with it.
    pub async fn next(&self) -> K {
        loop {
            let wake_at = {
                let mut state = self.lock();
                let now = Instant::now();
                promote_due(&mut state, now);
                self.refill(&mut state, now);
                if !state.turns.is_empty() && state.tokens >= 1.0 {
                    if let Some(key) = pop(&mut state) {
                        state.tokens -= 1.0;
                        state.active.insert(key.clone());
                        return key;
                    }
                }
                let token_at = (!state.turns.is_empty()).then(|| {
                    let missing = (1.0 - state.tokens).max(0.0);
                    now + Duration::from_secs_f64(missing / self.config.rate_per_second)
                });
                let retry_at = state.delayed.keys().next().map(|(at, _)| *at);
                match (token_at, retry_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = self.ready.notified() => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.ready.notified().await,
            }
        }
    }

    /// Ends a worker's turn with `key`.
    pub fn done(&self, key: &K, outcome: Outcome) {
        let mut state = self.lock();
        state.active.remove(key);
        match outcome {
            Outcome::Done => {
                state.failures.remove(key);
                if state.again.remove(key) {
                    push(&mut state, key.clone());
                }
            }
            Outcome::Retry => {
                let failures = {
                    let count = state.failures.entry(key.clone()).or_insert(0);
                    *count = count.saturating_add(1);
                    *count
                };
                state.again.remove(key);
                let delay = self.backoff(failures);
                state.sequence += 1;
                let at = (Instant::now() + delay, state.sequence);
                state.delayed.insert(at, key.clone());
                state.delayed_at.insert(key.clone(), at);
            }
        }
        drop(state);
        self.ready.notify_one();
    }

    /// The delay before retry number `failures`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        self.config
            .base_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.config.max_backoff)
    }

    fn refill(&self, state: &mut State<K>, now: Instant) {
        let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
        state.tokens =
            (state.tokens + elapsed * self.config.rate_per_second).min(self.config.burst);
        state.refilled = now;
    }
}

fn push<K: Grouped>(state: &mut State<K>, key: K) {
    if !state.waiting.insert(key.clone()) {
        return;
    }
    let group = key.group().to_owned();
    let line = state.lines.entry(group.clone()).or_default();
    if line.is_empty() {
        state.turns.push_back(group);
    }
    line.push_back(key);
}

fn pop<K: Grouped>(state: &mut State<K>) -> Option<K> {
    let group = state.turns.pop_front()?;
    let line = state.lines.get_mut(&group)?;
    let key = line.pop_front()?;
    if line.is_empty() {
        state.lines.remove(&group);
    } else {
        state.turns.push_back(group);
    }
    state.waiting.remove(&key);
    Some(key)
}

fn promote_due<K: Grouped>(state: &mut State<K>, now: Instant) {
    while let Some((&at, _)) = state.delayed.first_key_value() {
        if at.0 > now {
            break;
        }
        if let Some(key) = state.delayed.remove(&at) {
            state.delayed_at.remove(&key);
            push(state, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    struct Key(String, u32);

    impl Grouped for Key {
        fn group(&self) -> &str {
            &self.0
        }
    }

    fn key(group: &str, n: u32) -> Key {
        Key(group.to_owned(), n)
    }

    fn unlimited() -> QueueConfig {
        QueueConfig {
            rate_per_second: 1e9,
            burst: 1e9,
            ..QueueConfig::default()
        }
    }

    async fn take(queue: &WorkQueue<Key>, n: usize) -> Vec<Key> {
        let mut out = Vec::new();
        for _ in 0..n {
            let next = tokio::time::timeout(Duration::from_secs(1), queue.next())
                .await
                .expect("a key is ready");
            queue.done(&next, Outcome::Done);
            out.push(next);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_key_is_queued_once() {
        let queue = WorkQueue::new(unlimited());
        queue.add(key("a", 1));
        queue.add(key("a", 1));
        queue.add(key("a", 2));
        assert_eq!(queue.depth(), 2);
        assert_eq!(take(&queue, 2).await, [key("a", 1), key("a", 2)]);
        assert_eq!(queue.depth(), 0);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), queue.next())
                .await
                .is_err(),
            "nothing left"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_added_while_worked_on_runs_again_afterwards() {
        let queue = WorkQueue::new(unlimited());
        queue.add(key("a", 1));
        let first = queue.next().await;
        queue.add(key("a", 1));
        assert_eq!(queue.depth(), 0, "not queued while a worker holds it");
        queue.done(&first, Outcome::Done);
        assert_eq!(take(&queue, 1).await, [key("a", 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn policies_take_turns() {
        let queue = WorkQueue::new(unlimited());
        for n in 0..1000 {
            queue.add(key("big", n));
        }
        queue.add(key("small", 0));
        queue.add(key("other", 0));
        let order = take(&queue, 4).await;
        assert_eq!(
            order,
            [
                key("big", 0),
                key("small", 0),
                key("other", 0),
                key("big", 1)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_success_forgets_them() {
        let queue = WorkQueue::new(QueueConfig {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..unlimited()
        });
        assert_eq!(queue.backoff(1), Duration::from_millis(100));
        assert_eq!(queue.backoff(2), Duration::from_millis(200));
        assert_eq!(queue.backoff(3), Duration::from_millis(350));
        queue.add(key("a", 1));
        let started = Instant::now();
        for expected in [0, 100, 300] {
            let next = queue.next().await;
            assert_eq!(
                started.elapsed(),
                Duration::from_millis(expected),
                "retry after the backoff"
            );
            queue.done(&next, Outcome::Retry);
        }
        assert_eq!(queue.failures(&key("a", 1)), 3);
        assert_eq!(queue.depth(), 1, "a delayed key counts as waiting");
        let next = queue.next().await;
        assert_eq!(started.elapsed(), Duration::from_millis(650));
        queue.done(&next, Outcome::Done);
        assert_eq!(queue.failures(&key("a", 1)), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_change_ends_the_wait_for_a_retry() {
        let queue = WorkQueue::new(QueueConfig {
            base_backoff: Duration::from_secs(60),
            ..unlimited()
        });
        queue.add(key("a", 1));
        let next = queue.next().await;
        queue.done(&next, Outcome::Retry);
        let started = Instant::now();
        queue.add(key("a", 1));
        let next = queue.next().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(next, key("a", 1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_spaces_keys_after_the_burst() {
        let queue = WorkQueue::new(QueueConfig {
            rate_per_second: 10.0,
            burst: 2.0,
            ..QueueConfig::default()
        });
        for n in 0..4 {
            queue.add(key("a", n));
        }
        let started = Instant::now();
        let mut times = Vec::new();
        for _ in 0..4 {
            let next = queue.next().await;
            times.push(started.elapsed().as_millis());
            queue.done(&next, Outcome::Done);
        }
        assert_eq!(times, [0, 0, 100, 200]);
    }
}
