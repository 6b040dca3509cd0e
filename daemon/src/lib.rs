//! The cnm daemon and its client (in progress).
