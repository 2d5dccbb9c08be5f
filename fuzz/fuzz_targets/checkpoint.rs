//! cargo-fuzz target `checkpoint`: drives `dav2d_fuzz::checkpoint` (see crates/dav2d-fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dav2d_fuzz::checkpoint(data));
