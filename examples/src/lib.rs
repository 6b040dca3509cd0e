//! Runnable examples of cnm: see `readme.rs` (`cargo run -p cnm-examples --example readme`, as root).
