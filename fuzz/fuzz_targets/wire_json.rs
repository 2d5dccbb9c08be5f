//! cargo-fuzz target `wire_json`: drives `dav2d_fuzz::wire_json` (see crates/dav2d-fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dav2d_fuzz::wire_json(data));
