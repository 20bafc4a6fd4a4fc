//! Placeholder; the load tool is written below.
fn main() {}
