//! Benchmark placeholder: filled in by the restore_plan work.
fn main() {}
