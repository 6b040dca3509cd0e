//! cnmctl (in progress).
fn main() {}
