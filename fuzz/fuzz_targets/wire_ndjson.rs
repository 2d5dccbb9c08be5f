//! cargo-fuzz target `wire_ndjson`: drives `dav2d_fuzz::wire_ndjson` (see crates/dav2d-fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dav2d_fuzz::wire_ndjson(data));
