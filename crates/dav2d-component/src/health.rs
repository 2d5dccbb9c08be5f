//! Health: what each component reports to `/healthz` and `/metrics`, and
//! the board the runtime pins every running component's health to.

use std::fmt;
use std::sync::{Arc, RwLock};

/// One gauge a component exposes in `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gauge {
    /// The name without the `dav2d_` prefix.
    pub name: &'static str,
    /// The help text.
    pub help: &'static str,
    /// The value.
    pub value: i64,
}

impl Gauge {
    /// A gauge of a count (saturating at `i64::MAX`).
    pub fn count(name: &'static str, help: &'static str, value: u64) -> Gauge {
        Gauge {
            name,
            help,
            value: value.min(i64::MAX as u64) as i64,
        }
    }
}

/// Something that reports whether it works (a running source or sink, the
/// persistence thread); the HTTP API knows nothing else about it.
pub trait Health: Send + Sync + fmt::Debug {
    /// `Err(reason)` while degraded (the process keeps serving).
    fn status(&self) -> Result<(), String>;
    /// Gauges for `/metrics`.
    fn gauges(&self) -> Vec<Gauge> {
        Vec::new()
    }
}

/// The health of one component, as the board lists it.
#[derive(Clone, Debug)]
pub struct HealthReport {
    /// The component's name.
    pub component: String,
    /// Its kind (`http`, `tcp`, `synthetic`, `persistence`, ...).
    pub kind: &'static str,
    /// `Err(reason)` while degraded.
    pub status: Result<(), String>,
}

/// One pinned component: its pin, name, kind and health.
type Pinned = (Pin, String, &'static str, Arc<dyn Health>);

/// What [`HealthBoard::pin`] returns, to take the entry off again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pin(u64);

/// Every running component's health; cloned into whatever serves it. It
/// is what runtimes over one graph share (Python's `serve()` and
/// `persist()`), so it also carries their [`crate::Durability`].
#[derive(Clone, Default)]
pub struct HealthBoard {
    entries: Arc<RwLock<(u64, Vec<Pinned>)>>,
    durability: Arc<crate::Durability>,
    /// The components the runtimes started, as the JSON of their spec's
    /// `sources`, `sinks`, `persistence`, `metrics` and `cluster`
    /// (what `/graph` serves beside the live graph).
    components: Arc<RwLock<Option<Arc<str>>>>,
    /// The store's history, once a persistence sink started.
    history: Arc<RwLock<Option<Arc<dyn crate::HistoryReader>>>>,
    /// The running spec's version: 1 at start, one more per applied reload.
    version: Arc<std::sync::atomic::AtomicU64>,
    /// Who reloads the config, when the run can.
    reloader: Arc<RwLock<Option<Arc<dyn crate::ConfigReloader>>>>,
}

impl HealthBoard {
    /// The durability marks the lossless sinks of these runtimes report.
    pub fn durability(&self) -> &Arc<crate::Durability> {
        &self.durability
    }

    /// Records what the runtime started (a JSON object), for `/graph`.
    pub fn describe_components(&self, json: String) {
        *self.components.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::from(json));
    }

    /// Offers what a store recorded to the read faces (the first store
    /// started keeps the place).
    pub fn offer_history(&self, reader: Arc<dyn crate::HistoryReader>) {
        let mut history = self.history.write().unwrap_or_else(|p| p.into_inner());
        if history.is_none() {
            *history = Some(reader);
        }
    }

    /// The store's history, when persistence is on.
    pub fn history(&self) -> Option<Arc<dyn crate::HistoryReader>> {
        self.history
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Offers reloading the config to the read faces (`POST /config`).
    pub fn offer_reloader(&self, reloader: Arc<dyn crate::ConfigReloader>) {
        *self.reloader.write().unwrap_or_else(|p| p.into_inner()) = Some(reloader);
    }

    /// Who reloads the config, when the run can.
    pub fn reloader(&self) -> Option<Arc<dyn crate::ConfigReloader>> {
        self.reloader
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The running spec's version (0 before a runtime started, 1 at start,
    /// one more per reload that changed something).
    pub fn spec_version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sets the running spec's version.
    pub fn set_spec_version(&self, version: u64) {
        self.version
            .store(version, std::sync::atomic::Ordering::Release);
    }

    /// What [`HealthBoard::describe_components`] recorded, if anything.
    pub fn components(&self) -> Option<Arc<str>> {
        self.components
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl fmt::Debug for HealthBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthBoard")
            .field("components", &self.reports().len())
            .finish()
    }
}

impl HealthBoard {
    /// Pins a component's health to the board.
    pub fn pin(&self, component: &str, kind: &'static str, health: Arc<dyn Health>) -> Pin {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.0 += 1;
        let pin = Pin(entries.0);
        entries.1.push((pin, component.to_string(), kind, health));
        pin
    }

    /// Takes a stopped component off the board.
    pub fn unpin(&self, pin: Pin) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.1.retain(|(p, ..)| *p != pin);
    }

    /// Every component's current health.
    pub fn reports(&self) -> Vec<HealthReport> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .1
            .iter()
            .map(|(_, component, kind, health)| HealthReport {
                component: component.clone(),
                kind,
                status: health.status(),
            })
            .collect()
    }

    /// The reasons of every degraded component, prefixed by its name.
    pub fn problems(&self) -> Vec<String> {
        self.reports()
            .into_iter()
            .filter_map(|report| {
                report
                    .status
                    .err()
                    .map(|reason| format!("{}: {reason}", report.component))
            })
            .collect()
    }

    /// Every component's gauges, with the component's name and kind.
    pub fn gauges(&self) -> Vec<(String, &'static str, Gauge)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .1
            .iter()
            .flat_map(|(_, component, kind, h)| {
                h.gauges()
                    .into_iter()
                    .map(move |gauge| (component.clone(), *kind, gauge))
            })
            .collect()
    }
}
