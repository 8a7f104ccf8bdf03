//! Task types.
