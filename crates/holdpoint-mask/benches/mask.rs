//! Masking benchmarks (filled below).
fn main() {}
