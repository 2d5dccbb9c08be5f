//! A frame source as a component of the runtime (`sources: - kind: frames`):
//! it opens its URL when the runtime starts and feeds every new frame into
//! its graph stream, a wave per frame, until the runtime stops it.

use std::sync::Arc;

use dav2d_component::{Context, Gauge, Health, Running, Source, StartError, ThreadTask};

use crate::pool::FramePool;

/// The `frames` source: a frame URL feeding a graph stream.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameSource {
    /// The component's name.
    pub name: String,
    /// The frame URL (`synthetic:`, `y4m:`, `tcp://`, `x11:`).
    pub url: String,
    /// The graph stream its frames go to.
    pub stream: String,
    /// The token a `tcp://` producer must send first (`AUTH <token>`).
    pub token: Option<String>,
}

/// The health of a running frame source: its counts, and whether it ended.
#[derive(Debug)]
struct FrameHealth {
    pool: FramePool,
}

impl Health for FrameHealth {
    fn status(&self) -> Result<(), String> {
        if self.pool.is_closed() {
            Err(match self.pool.error() {
                Some(error) => format!("the frame source ended with an error: {error}"),
                None => "the frame source ended".to_string(),
            })
        } else {
            Ok(())
        }
    }

    fn gauges(&self) -> Vec<Gauge> {
        let gauge = Gauge::count;
        vec![
            gauge(
                "frames_published",
                "Frames the source published",
                self.pool.published(),
            ),
            gauge(
                "frames_skipped",
                "Frames the source skipped because every slot was held",
                self.pool.skipped(),
            ),
        ]
    }
}

impl Source for FrameSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "frames"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let (graph, intake) = (context.graph().clone(), context.intake.clone());
        let source = crate::nodes::open_for_graph(&self.url, &graph, self.token.clone())
            .map_err(|error| StartError::Other(format!("{}: {error}", self.name)))?;
        let pool = source.pool().clone();
        let health: Arc<dyn Health> = Arc::new(FrameHealth { pool: pool.clone() });
        let stream = self.stream;
        let task = ThreadTask::spawn("dav2d-frames-feed", health, move |stop| {
            let mut source = source;
            crate::nodes::feed(&pool, &intake, &stream, &stop);
            source.stop();
        })?;
        Ok(Box::new(task))
    }
}
