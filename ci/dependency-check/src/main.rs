//! Never run: `scripts/check-deps.sh` only resolves this crate's tree.
fn main() {}
