//! cargo-fuzz target `config`: drives `dav2d_fuzz::config` (see crates/dav2d-fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dav2d_fuzz::config(data));
