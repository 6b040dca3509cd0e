//! Docker remote plugin protocol (in progress).
