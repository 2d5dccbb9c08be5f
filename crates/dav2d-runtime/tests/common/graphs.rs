//! A graph as `dav2d check` builds one: no stream is created by use.

use std::sync::Arc;

use dav2d_core::{Graph, GraphOptions, ManualClock};

/// A graph that creates no stream on first use, on a manual clock at 0.
pub fn strict_graph() -> Graph {
    let options = GraphOptions {
        auto_create_streams: false,
        ..GraphOptions::default()
    };
    Graph::new(options, Arc::new(ManualClock::new(0)))
}
