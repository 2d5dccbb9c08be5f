//! A broker client's health: connected or reconnecting (with the last
//! error), and its counts, for `/healthz` and `/metrics`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::health::{Gauge, Health};

/// What a broker client reports.
#[derive(Debug, Default)]
pub struct BrokerHealth {
    connected: AtomicBool,
    reconnects: AtomicU64,
    messages: AtomicU64,
    rejected: AtomicU64,
    last_error: Mutex<Option<String>>,
    stalled: Mutex<Option<String>>,
}

impl BrokerHealth {
    /// The client is connected (again).
    pub fn connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    /// The connection failed with `error`; the client retries.
    pub fn failed(&self, error: String) {
        if self.connected.swap(false, Ordering::Relaxed) {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    /// Whether it is connected now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Whether messages are stuck (`Some`, saying why: the engine has taken
    /// none for a while) or flowing again (`None`); shown by `/healthz`.
    pub fn stalled(&self, why: Option<String>) {
        *self.stalled.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// One message handled; `rejected` samples of it were refused.
    pub fn message(&self, rejected: u64) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
    }
}

impl Health for BrokerHealth {
    fn status(&self) -> Result<(), String> {
        if let Some(why) = &*self.stalled.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(why.clone());
        }
        if self.is_connected() {
            return Ok(());
        }
        let error = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        Err(match &*error {
            Some(error) => format!("reconnecting to the broker (last error: {error})"),
            None => "connecting to the broker".to_string(),
        })
    }

    fn gauges(&self) -> Vec<Gauge> {
        let gauge = Gauge::count;
        vec![
            gauge(
                "broker_connected",
                "Whether the broker client is connected",
                u64::from(self.is_connected()),
            ),
            gauge(
                "broker_reconnects",
                "Times the broker connection was lost",
                self.reconnects.load(Ordering::Relaxed),
            ),
            gauge(
                "broker_messages",
                "Broker messages handled",
                self.messages.load(Ordering::Relaxed),
            ),
            gauge(
                "broker_rejected",
                "Samples of broker messages rejected",
                self.rejected.load(Ordering::Relaxed),
            ),
        ]
    }
}
