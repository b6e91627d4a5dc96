//! Test fixtures shared by the crates' tests, and the cross-crate end-to-end tests in this
//! crate's `tests/` folder.
//!
//! Every fixture cleans up after itself on drop, failed tests included: processes are killed
//! by PID, temporary directories removed. Servers listen on loopback only.

pub mod etcd;
pub mod netns;

/// A free TCP port on 127.0.0.1 (bound then released; good enough for test servers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
