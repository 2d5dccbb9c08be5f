//! Subscriptions: bounded buffers that deliver stream updates to a consumer
//! on another thread and conflate, rather than grow, when it falls behind.
//!
//! `EveryChange` delivers every update in order while the consumer keeps up;
//! once `capacity` updates are waiting, further updates are folded into one
//! pending update per key (the newest), so memory is bounded by the key
//! space, never by the rate. `Latest` keeps only the pending newest per key.
//! `Lossless` is `EveryChange` for consumers that must not lose history
//! (persistence): once half its capacity waits it raises the graph's
//! [`Backpressure`], which producers honour by waiting or refusing new
//! samples until the consumer is back under a quarter; only if producers
//! ignore it does it conflate, and that is counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::constraint::Transition;
use crate::value::Value;

/// How a subscription buffers updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// Only the newest pending update per key.
    #[default]
    Latest,
    /// Every update, conflating per key only when `capacity` are waiting.
    EveryChange,
    /// Every update, raising the graph's [`Backpressure`] while more than
    /// half of `capacity` wait; conflates (counted) only past `capacity`.
    Lossless,
}

/// The graph-wide signal of lossless consumers that are behind: producers
/// check it before applying a batch (a relaxed atomic load) and wait or
/// refuse while it is raised.
#[derive(Debug, Default)]
pub struct Backpressure {
    behind: AtomicUsize,
    /// Producers waiting for it to be lowered sleep here; lowering it to
    /// zero wakes them.
    lowered: (Mutex<()>, std::sync::Condvar),
}

impl Backpressure {
    /// Whether a lossless consumer is behind: wait or refuse new samples.
    #[inline]
    pub fn is_raised(&self) -> bool {
        self.behind.load(Ordering::Relaxed) > 0
    }

    /// Waits until no lossless consumer is behind, at most `longest`; true
    /// when it was lowered. Woken by the consumer that catches up, not by
    /// polling.
    pub fn wait_lowered(&self, longest: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + longest;
        let (lock, lowered) = &self.lowered;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.is_raised() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = lowered
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    fn lower(&self) {
        if self.behind.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Under the lock, so a waiter between its check and its wait
            // cannot miss the wake-up.
            let _guard = self.lowered.0.lock().unwrap_or_else(|p| p.into_inner());
            self.lowered.1.notify_all();
        }
    }
}

/// One change of a (stream, key) delivered to subscribers.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// The stream (or node, or constraint) name.
    pub name: Arc<str>,
    /// The key.
    pub key: Arc<str>,
    /// The new value; `None` when the update reports an error.
    pub value: Option<Value>,
    /// The sample's timestamp in ns.
    pub ts_ns: i64,
    /// The sample's sequence number in its (stream, key).
    pub seq: u64,
    /// The error state of a node's key (a traceback for Python logic).
    pub error: Option<Arc<str>>,
    /// For constraint streams: the state change this update reports.
    pub transition: Option<Transition>,
}

#[derive(Debug, Default)]
struct Buffer {
    queue: VecDeque<Update>,
    overflow: IndexMap<(Arc<str>, Arc<str>), Update>,
    conflated: u64,
    delivered: u64,
}

#[derive(Debug)]
pub(crate) struct SubscriptionShared {
    buffer: Mutex<Buffer>,
    ready: Condvar,
    closed: AtomicBool,
    mode: SubscriptionMode,
    capacity: usize,
    /// For `Lossless`: the graph's signal, and whether this one raised it.
    pressure: Option<(Arc<Backpressure>, AtomicBool)>,
}

impl SubscriptionShared {
    /// Raises or lowers this subscription's share of the backpressure as
    /// `waiting` updates wait.
    fn press(&self, waiting: usize) {
        let Some((pressure, raised)) = &self.pressure else {
            return;
        };
        if waiting > self.capacity / 2 {
            if !raised.swap(true, Ordering::AcqRel) {
                pressure.behind.fetch_add(1, Ordering::AcqRel);
            }
        } else if waiting <= self.capacity / 4 && raised.swap(false, Ordering::AcqRel) {
            pressure.lower();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn offer(&self, update: Update) {
        let mut buffer = self.lock();
        let queue_full = self.mode == SubscriptionMode::Latest
            || buffer.queue.len() >= self.capacity
            || !buffer.overflow.is_empty();
        if queue_full {
            if buffer
                .overflow
                .insert((Arc::clone(&update.name), Arc::clone(&update.key)), update)
                .is_some()
            {
                buffer.conflated += 1;
            }
        } else {
            buffer.queue.push_back(update);
        }
        let waiting = buffer.queue.len() + buffer.overflow.len();
        drop(buffer);
        self.press(waiting);
        self.ready.notify_one();
    }
}

impl Drop for SubscriptionShared {
    fn drop(&mut self) {
        self.press(0);
    }
}

/// The consumer end of a subscription. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    shared: Arc<SubscriptionShared>,
    name: Arc<str>,
}

impl Subscription {
    pub(crate) fn new(
        name: Arc<str>,
        mode: SubscriptionMode,
        capacity: usize,
        pressure: &Arc<Backpressure>,
    ) -> (Self, Arc<SubscriptionShared>) {
        let shared = Arc::new(SubscriptionShared {
            buffer: Mutex::new(Buffer::default()),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
            mode,
            capacity: capacity.max(1),
            pressure: (mode == SubscriptionMode::Lossless)
                .then(|| (Arc::clone(pressure), AtomicBool::new(false))),
        });
        (
            Self {
                shared: Arc::clone(&shared),
                name,
            },
            shared,
        )
    }

    /// The name subscribed to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next update if one is waiting.
    pub fn try_next(&self) -> Option<Update> {
        let mut buffer = self.shared.lock();
        self.pop(&mut buffer)
    }

    fn pop(&self, buffer: &mut Buffer) -> Option<Update> {
        if buffer.queue.is_empty() && !buffer.overflow.is_empty() {
            // Move the merged updates over in one go, in their order: taking
            // them one by one from the front of the map would cost a shift
            // of the whole map each (quadratic, with the producer waiting on
            // this buffer's lock meanwhile).
            let merged = std::mem::take(&mut buffer.overflow);
            buffer.queue.extend(merged.into_values());
        }
        let update = buffer.queue.pop_front();
        if update.is_some() {
            buffer.delivered += 1;
            self.shared.press(buffer.queue.len());
        }
        update
    }

    /// Waits up to `timeout` for the next update; `None` on timeout or close.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Update> {
        let deadline = Instant::now() + timeout;
        let mut buffer = self.shared.lock();
        loop {
            if let Some(update) = self.pop(&mut buffer) {
                return Some(update);
            }
            if self.shared.is_closed() {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            buffer = match self.shared.ready.wait_timeout(buffer, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// How many updates were folded into a newer one because the consumer
    /// was behind.
    pub fn conflated(&self) -> u64 {
        self.shared.lock().conflated
    }

    /// How many updates are waiting.
    pub fn pending(&self) -> usize {
        let buffer = self.shared.lock();
        buffer.queue.len() + buffer.overflow.len()
    }

    /// Whether the subscription was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Stops the subscription; waiting readers wake up and get `None`.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // A closed consumer holds nobody back.
        self.shared.press(0);
        self.shared.ready.notify_all();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lossless_subscription_raises_backpressure_at_half_and_lowers_it_at_a_quarter() {
        let pressure = Arc::new(Backpressure::default());
        let (subscription, shared) =
            Subscription::new(Arc::from("s"), SubscriptionMode::Lossless, 8, &pressure);
        for i in 0..4 {
            shared.offer(update("k", f64::from(i)));
        }
        assert!(!pressure.is_raised(), "4 of 8 is not more than half");
        shared.offer(update("k", 4.0));
        assert!(pressure.is_raised());
        for _ in 0..2 {
            subscription.try_next();
        }
        assert!(pressure.is_raised(), "3 waiting is more than a quarter");
        subscription.try_next();
        assert!(!pressure.is_raised());
        shared.offer(update("k", 5.0));
        shared.offer(update("k", 6.0));
        shared.offer(update("k", 7.0));
        assert!(pressure.is_raised());
        subscription.close();
        assert!(!pressure.is_raised(), "a closed consumer holds nobody back");
        assert_eq!(subscription.conflated(), 0);
    }

    fn update(key: &str, value: f64) -> Update {
        Update {
            name: Arc::from("s"),
            key: Arc::from(key),
            value: Some(Value::Float(value)),
            ts_ns: 0,
            seq: 0,
            error: None,
            transition: None,
        }
    }

    fn drain(subscription: &Subscription) -> Vec<(String, f64)> {
        std::iter::from_fn(|| subscription.try_next())
            .map(|u| {
                (
                    u.key.to_string(),
                    u.value.and_then(|v| v.as_f64()).unwrap_or(f64::NAN),
                )
            })
            .collect()
    }

    #[test]
    fn every_change_delivers_in_order_then_conflates_per_key() {
        let (subscription, shared) = Subscription::new(
            Arc::from("s"),
            SubscriptionMode::EveryChange,
            2,
            &Arc::default(),
        );
        for (key, value) in [("a", 1.0), ("b", 2.0), ("a", 3.0), ("b", 4.0), ("a", 5.0)] {
            shared.offer(update(key, value));
        }
        let got = drain(&subscription);
        let expected = [("a", 1.0), ("b", 2.0), ("a", 5.0), ("b", 4.0)];
        assert_eq!(got, expected.map(|(k, v)| (k.to_string(), v)));
        assert_eq!(subscription.conflated(), 1);
    }

    #[test]
    fn latest_mode_keeps_one_per_key() {
        let (subscription, shared) = Subscription::new(
            Arc::from("s"),
            SubscriptionMode::Latest,
            16,
            &Arc::default(),
        );
        for i in 0..100 {
            shared.offer(update(if i % 2 == 0 { "a" } else { "b" }, i as f64));
        }
        assert_eq!(
            drain(&subscription),
            vec![("a".to_string(), 98.0), ("b".to_string(), 99.0)]
        );
        assert_eq!(subscription.conflated(), 98);
    }

    #[test]
    fn close_wakes_a_waiting_reader() {
        let (subscription, _shared) =
            Subscription::new(Arc::from("s"), SubscriptionMode::Latest, 1, &Arc::default());
        subscription.close();
        assert_eq!(subscription.next_timeout(Duration::from_secs(5)), None);
    }
}
