//! RL math as pure functions.
