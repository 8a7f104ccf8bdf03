//! 1-shot RLVR selection.
