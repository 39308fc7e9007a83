//! Every engine implementation passes the shared conformance suite.

#![allow(clippy::unwrap_used)]

use storage::{FaultEngine, FjallConfig, FjallEngine, MemoryEngine, conformance};

#[test]
fn memory_engine_conforms() {
    conformance::run_all(MemoryEngine::new);
}

#[test]
fn fjall_engine_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        FjallEngine::open(dir.path().join(n.to_string()), &FjallConfig::for_tests()).unwrap()
    });
}

#[test]
fn fault_engine_without_faults_conforms() {
    conformance::run_all(|| FaultEngine::new(MemoryEngine::new()));
}
