//! Metric names.
