//! A throwaway etcd server (Debian's `etcd-server`) on free loopback ports with a temporary
//! data directory; killed and removed on drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl EtcdServer {
    /// Starts etcd and waits (at most 30 s) until it accepts connections.
    pub fn start() -> EtcdServer {
        // On tmpfs when there is one: fsync is free there, which makes etcd several times
        // faster for tests (durability across a machine crash is not what they test).
        let dir = match std::path::Path::new("/dev/shm") {
            shm if shm.is_dir() => tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir()),
            _ => tempfile::tempdir(),
        }
        .expect("temp dir");
        Self::start_in(dir)
    }

    /// Starts etcd with its data under `parent` (say, a directory on a real disk, for
    /// benchmarks where fsync must cost what it costs in production).
    pub fn start_under(parent: &std::path::Path) -> EtcdServer {
        Self::start_in(tempfile::tempdir_in(parent).expect("temp dir"))
    }

    fn start_in(dir: tempfile::TempDir) -> EtcdServer {
        let mut s = EtcdServer {
            child: None,
            dir,
            client_port: crate::free_port(),
            peer_port: crate::free_port(),
        };
        s.spawn();
        s
    }

    fn binary() -> PathBuf {
        for p in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
            if std::path::Path::new(p).exists() {
                return PathBuf::from(p);
            }
        }
        panic!("etcd is not installed (apt-get install etcd-server)");
    }

    fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("log file");
        let child = Command::new(Self::binary())
            .arg("--name=brindle-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=brindle-test={peer}"))
            .arg("--log-level=error")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "etcd did not start; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// What etcd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// Kills etcd (SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
