//! Benchmark placeholder: filled in by the postgres work.
fn main() {}
