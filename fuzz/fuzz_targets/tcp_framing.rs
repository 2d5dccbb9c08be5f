//! cargo-fuzz target `tcp_framing`: drives `dav2d_fuzz::tcp_framing` (see crates/dav2d-fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dav2d_fuzz::tcp_framing(data));
