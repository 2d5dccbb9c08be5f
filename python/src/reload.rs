//! `Graph.apply(path)`: a YAML config applied to a running Python graph as
//! a hot reload, through the same `Reloader` as `dav2d run --watch` (the
//! graph alone is compared: the components `serve()` started are not the
//! config's).

use std::path::Path;

use dav2d_runtime::{Applied, Config, Engine, Overrides, Reloader};

/// Loads the config at `path` and applies it to `engine`'s graph: what
/// changed, or why it was refused (counted either way; nothing changed).
pub fn apply(engine: &Engine, path: &Path) -> Result<Applied, String> {
    let overrides = Overrides {
        http: Some(None),
        tcp: Some(None),
        data: Some(None),
        cluster: None,
    };
    let config = Config::load(path).map_err(|error| error.to_string());
    Reloader::of_engine(engine).reload_config(config, &overrides)
}
