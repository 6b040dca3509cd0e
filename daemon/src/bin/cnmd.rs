//! cnmd (in progress).
fn main() {}
