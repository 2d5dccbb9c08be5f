//! cargo-fuzz target `wal_segment`: drives `dav2d_fuzz::wal_segment` (see crates/dav2d-fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dav2d_fuzz::wal_segment(data));
