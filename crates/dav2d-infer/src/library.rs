//! Finding and loading `libonnxruntime` at run time: the path the config
//! gives (`processing.runtime_library`), `ORT_DYLIB_PATH`, the directories
//! the caller knows (the Python layer passes the installed `onnxruntime`
//! package's), then the `onnxruntime` package of the Python on `PATH`.
//! Loading goes through ort's fallible initialiser, never the implicit one
//! that panics; the one environment is kept for the process.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The process's ONNX Runtime environment and the library it came from.
static ENVIRONMENT: Mutex<Option<(ort::environment::Environment, PathBuf)>> = Mutex::new(None);

/// Directories searched for the library besides the config's path and
/// `ORT_DYLIB_PATH` (set by the Python layer to the installed package's).
static HINTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Adds a directory where `libonnxruntime.so*` may be (e.g. the
/// `onnxruntime/capi` directory of the installed wheel).
pub fn add_hint(dir: PathBuf) {
    let mut hints = HINTS.lock().unwrap_or_else(|p| p.into_inner());
    if !hints.contains(&dir) {
        hints.push(dir);
    }
}

/// The library file inside `dir`, if there is one.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so")
                    || n == "onnxruntime.dll"
                    || n.starts_with("libonnxruntime.") && n.ends_with(".dylib")
            })
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The `onnxruntime/capi` directory of the Python on `PATH` (`python3`, or
/// `$PYTHON`), if it has the package.
fn python_package_dir() -> Option<PathBuf> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import importlib.util, os; s = importlib.util.find_spec('onnxruntime'); print(os.path.join(list(s.submodule_search_locations)[0], 'capi'))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(text.trim()))
}

/// Where the library is, or an error naming every place looked at and how
/// to install it.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let mut looked = Vec::new();
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(format!(
            "processing.runtime_library: {} does not exist; give the path of libonnxruntime.so (inside the onnxruntime wheel: site-packages/onnxruntime/capi/)",
            path.display()
        ));
    }
    if let Ok(path) = std::env::var("ORT_DYLIB_PATH")
        && !path.is_empty()
    {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        looked.push(format!("ORT_DYLIB_PATH={} (no such file)", path.display()));
    }
    let hints = HINTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for dir in hints.iter().cloned().chain(python_package_dir()) {
        if let Some(path) = library_in(&dir) {
            return Ok(path);
        }
        looked.push(dir.display().to_string());
    }
    if looked.is_empty() {
        looked.push("the onnxruntime package of python3 (not installed)".to_string());
    }
    Err(format!(
        "ONNX Runtime was not found (looked in: {}); install it with `pip install onnxruntime` into the Python that runs dav2d, or set processing.runtime_library or ORT_DYLIB_PATH to libonnxruntime.so",
        looked.join(", ")
    ))
}

/// Runs `work` with the process's environment, loading the library first
/// if it is not loaded yet; returns the library's path beside the result.
pub fn with_environment<T>(
    explicit: Option<&Path>,
    work: impl FnOnce(&ort::environment::Environment) -> T,
) -> Result<(T, PathBuf), String> {
    let mut environment = ENVIRONMENT.lock().unwrap_or_else(|p| p.into_inner());
    if environment.is_none() {
        let path = find(explicit)?;
        let builder = ort::init_from(&path).map_err(|error| {
            format!(
                "cannot load ONNX Runtime from {}: {error}; install a matching one with `pip install \"onnxruntime>=1.31\"`",
                path.display()
            )
        })?;
        let built = builder.with_name("dav2d").build().map_err(|error| {
            format!(
                "ONNX Runtime from {} failed to start: {error}",
                path.display()
            )
        })?;
        *environment = Some((built, path));
    }
    match environment.as_ref() {
        Some((env, path)) => Ok((work(env), path.clone())),
        None => Err("the ONNX Runtime environment is not set up".to_string()),
    }
}
