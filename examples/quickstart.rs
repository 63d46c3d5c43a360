//! The README's quick start: a replicated operator's `main`. It leads
//! while it can, and on SIGTERM (what Kubernetes sends a pod it stops) or
//! Ctrl-C it ends its term, lets the leader work drain, releases the Lease
//! so that another replica leads at once, and exits 0.
//!
//! ```sh
//! KUBECONFIG=... cargo run --example quickstart   # run it twice, then Ctrl-C one
//! ```
//!
//! The program is `quickstart-program/program.rs`, word for word the
//! README's Quick start block (tests/quickstart.rs checks that, and runs it
//! as processes; it includes the file, which an example with these crate
//! docs could not be).

include!("quickstart-program/program.rs");
