//! busd daemon (placeholder until the daemon lands).
fn main() {}
