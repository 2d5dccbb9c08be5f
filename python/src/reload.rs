//! `Graph.apply(path)` and `Graph.apply(spec)`: a YAML config, or a spec
//! held as data (what `Graph.spec()` returns, edited), applied to a running
//! Python graph as a hot reload, through the same `Reloader` as `dav2d run
//! --watch` (the graph alone is compared: the components `serve()` started
//! are not the config's).

use std::path::Path;

use dav2d_runtime::{Applied, Config, Engine, Overrides, Reloader, Spec};

/// Applies the config at path `source`, or with `spec` the spec `source`
/// holds as JSON, to `engine`'s graph: what changed, or why it was refused
/// (counted either way; nothing changed).
pub fn apply(engine: &Engine, source: &str, spec: bool) -> Result<Applied, String> {
    let reloader = Reloader::of_engine(engine);
    if spec {
        return reloader.reload_spec(Spec::from_json(source));
    }
    let overrides = Overrides {
        http: Some(None),
        tcp: Some(None),
        data: Some(None),
        cluster: None,
    };
    let config = Config::load(Path::new(source)).map_err(|error| error.to_string());
    reloader.reload_config(config, &overrides)
}
