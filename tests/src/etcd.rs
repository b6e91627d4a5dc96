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
    /// Run inside this network namespace, listening on `host` (else on loopback here).
    netns: Option<String>,
    host: String,
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
            netns: None,
            host: "127.0.0.1".into(),
        };
        s.spawn();
        s
    }

    /// Starts etcd inside test network namespace `ns`, listening on `host` (an address of
    /// that namespace), for tests whose nodes must reach it (and lose it).
    pub fn start_in_netns(ns: &str, host: &str) -> EtcdServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = EtcdServer {
            child: None,
            dir,
            client_port: 2379,
            peer_port: 2380,
            netns: Some(ns.to_string()),
            host: host.to_string(),
        };
        s.spawn();
        s
    }

    /// etcd's PID (to pause it with SIGSTOP, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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
        let client = format!("http://{}:{}", self.host, self.client_port);
        let peer = format!("http://{}:{}", self.host, self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("log file");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(Self::binary());
                c
            }
            None => Command::new(Self::binary()),
        };
        let child = cmd
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
        let addr: std::net::SocketAddr = format!("{}:{}", self.host, self.client_port)
            .parse()
            .expect("etcd address");
        let up = || match &self.netns {
            Some(ns) => crate::netns::in_netns(ns, move || TcpStream::connect(addr).is_ok())
                .join()
                .unwrap_or(false),
            None => TcpStream::connect(addr).is_ok(),
        };
        while !up() {
            assert!(
                Instant::now() < deadline,
                "etcd did not start; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client URL, `http://127.0.0.1:PORT` (or the namespace's address).
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.client_port)
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
