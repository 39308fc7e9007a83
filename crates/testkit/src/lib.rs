//! Test harnesses shared by Tessera's tests.
//!
//! - [`crash`]: the workload of the kill-and-recover test. The `crash-writer` binary runs
//!   it in a child process that the test kills with SIGKILL; [`crash::verify`] then checks
//!   the store the child left.

pub mod crash;
