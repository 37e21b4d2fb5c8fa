//! Benchmark placeholder: filled in by the bundle_write work.
fn main() {}
