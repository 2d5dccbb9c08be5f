//! `kind: python` nodes: the hook through which the Python package makes
//! node logic from a config's `logic: module:function`. The runtime has no
//! interpreter of its own; the `dav2d` extension module installs the hook
//! when it is imported, so `dav2d run` from the package, `dav2d.serve` and
//! `Graph.load_config` run such nodes, and the plain Rust binary refuses
//! them with what to run instead.

use std::path::Path;
use std::sync::OnceLock;

use dav2d_core::CustomLogic;

/// What a `kind: python` node asks of the Python that runs it.
#[derive(Clone, Copy, Debug)]
pub struct PythonLogicRequest<'a> {
    /// `module:function`, as written.
    pub logic: &'a str,
    /// The config file's folder (a module may be a file there).
    pub config_dir: &'a Path,
    /// Whether the function must return numbers (`returns: number`).
    pub numeric: bool,
}

/// Makes node logic from a request, or says why it cannot.
pub type PythonLogicFactory = fn(&PythonLogicRequest<'_>) -> Result<Box<dyn CustomLogic>, String>;

static FACTORY: OnceLock<PythonLogicFactory> = OnceLock::new();

/// Installs the factory of `kind: python` logic (the Python package does,
/// once per process; a second call keeps the first).
pub fn install_python_logic(factory: PythonLogicFactory) {
    let _ = FACTORY.set(factory);
}

/// The logic a `kind: python` node names.
pub(crate) fn python_logic(
    request: &PythonLogicRequest<'_>,
) -> Result<Box<dyn CustomLogic>, String> {
    match FACTORY.get() {
        Some(factory) => factory(request),
        None => Err(
            "kind: python runs a Python function, and this dav2d binary has no Python in it; \
             install the package (`pip install dav2d`) and use its `dav2d` command, \
             or run the config from Python with dav2d.serve(path)"
                .to_string(),
        ),
    }
}
