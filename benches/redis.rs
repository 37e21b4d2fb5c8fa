//! Benchmark placeholder: filled in by the redis work.
fn main() {}
