//! Test fixtures shared by the crates' tests, and the cross-crate end-to-end tests in this
//! crate's `tests/` folder.
//!
//! Every fixture cleans up after itself on drop, failed tests included: processes are killed
//! by PID, temporary directories removed. Servers listen on loopback only.

pub mod cni;
pub mod etcd;
pub mod netns;
pub mod probe;

/// A free TCP port on 127.0.0.1 (bound then released; good enough for test servers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A binary of the workspace built by the same `cargo test --workspace` run (next to the test
/// executable's `deps/` folder), e.g. `brindlectl` for another crate's end-to-end tests.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so every binary is built",
        p.display()
    );
    p
}
