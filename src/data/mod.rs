//! Benchmark loaders.
