//! Parquet files of samples, for `dav2d replay --from FILE.parquet`: the
//! documented sample shape (columns `stream`, `key`, `value` and `ts`, as
//! pandas' `to_parquet` or pyarrow writes them, Snappy or zstd), or a file
//! of the store's own history shape (what `dav2d export --format parquet`
//! writes and what the store rolls its log into).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use dav2d_core::Value;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::history::{HistoryError, io, pq};

/// Hands every sample of Parquet file `path` to `each` as (stream, key,
/// ts in ns since the epoch, value), in file order. A row that is not a
/// sample (a missing or non-numeric column) is an error naming its row.
pub fn read_samples(
    path: &Path,
    mut each: impl FnMut(&Arc<str>, &Arc<str>, i64, Value),
) -> Result<(), HistoryError> {
    let file = File::open(path).map_err(io("opening", path))?;
    let reader = SerializedFileReader::new(file).map_err(pq(path))?;
    let columns: Vec<String> = (reader.metadata().file_metadata().schema_descr().columns())
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let has = |name: &str| columns.iter().any(|c| c == name);
    if has("name") && has("state") && !has("stream") {
        // The store's history shape: constraint states are text.
        return crate::history::read_file(path, |rows| {
            for i in 0..rows.len() {
                let value = match (&rows.value[i], &rows.state[i]) {
                    (Some(x), _) => Value::Float(*x),
                    (None, Some(text)) => Value::Str(Arc::clone(text)),
                    (None, None) => continue,
                };
                each(&rows.name[i], &rows.key[i], rows.ts[i], value);
            }
            Ok(())
        });
    }
    let wrong = |message: String| HistoryError::Output(format!("{}: {message}", path.display()));
    if !["stream", "key", "value", "ts"].iter().all(|c| has(c)) {
        return Err(wrong(format!(
            "a sample file has the columns stream, key, value and ts (ns since the epoch, or a timestamp); this one has {}",
            columns.join(", ")
        )));
    }
    // Streams and keys repeat: one shared copy of each.
    let mut names: std::collections::HashSet<Arc<str>> = Default::default();
    let mut intern = |text: &str| -> Arc<str> {
        if let Some(shared) = names.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        names.insert(Arc::clone(&shared));
        shared
    };
    let rows = reader.get_row_iter(None).map_err(pq(path))?;
    for (n, row) in rows.enumerate() {
        let row = row.map_err(pq(path))?;
        let (mut stream, mut key, mut ts, mut value) = (None, None, None, None);
        for (column, field) in row.get_column_iter() {
            match (column.as_str(), field) {
                ("stream", Field::Str(s)) => stream = Some(intern(s)),
                ("key", Field::Str(s)) => key = Some(intern(s)),
                ("ts", Field::Long(ns)) => ts = Some(*ns),
                ("ts", Field::TimestampMicros(us)) => ts = Some(us.saturating_mul(1_000)),
                ("ts", Field::TimestampMillis(ms)) => ts = Some(ms.saturating_mul(1_000_000)),
                ("value", Field::Double(x)) => value = Some(*x),
                ("value", Field::Float(x)) => value = Some(f64::from(*x)),
                ("value", Field::Long(x)) => value = Some(*x as f64),
                ("value", Field::Int(x)) => value = Some(f64::from(*x)),
                _ => {}
            }
        }
        match (stream, key, ts, value) {
            (Some(stream), Some(key), Some(ts), Some(value)) => {
                each(&stream, &key, ts, Value::Float(value))
            }
            _ => {
                return Err(wrong(format!(
                    "row {n}: a sample needs a text stream and key, an integer or timestamp ts and a numeric value; it has {row}"
                )));
            }
        }
    }
    Ok(())
}
