//! The `wbs-nrw` adapter renders an arbitrary envelope (see common.rs).
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|body: &[u8]| common::render("wbs-nrw", body));
