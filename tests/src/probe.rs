//! Reachability probes between test namespaces, for policy tests: a TCP and UDP echo server in
//! each namespace (threads of the test process, entered with `setns`), TCP connects and UDP
//! round trips made from inside a namespace, ICMP by `ping`, and a full matrix of every
//! source to every destination run concurrently (a denied probe costs its timeout once, not
//! once per pair).
//!
//! A probe succeeds only on an answer: TCP needs the server's reply after the handshake (which
//! names the source address it saw, for NAT tests), UDP
//! the echoed datagram, ICMP an echo reply. Every wait is bounded by [`TIMEOUT`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::in_netns;

/// How long a probe waits for its answer.
pub const TIMEOUT: Duration = Duration::from_millis(1200);
/// The longest a server thread lives, whatever happens to the test.
const SERVER_LIFETIME: Duration = Duration::from_secs(900);

/// A probe's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP connect and a reply.
    Tcp,
    /// A UDP datagram and its echo.
    Udp,
    /// ICMP echo.
    Icmp,
}

impl Proto {
    /// All three.
    pub const ALL: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];
}

/// Echo servers (TCP and UDP on the given ports) in some namespaces; stopped on drop.
#[derive(Debug)]
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    /// Starts a TCP and a UDP server on every port in each of `namespaces` (all addresses).
    pub fn start(namespaces: &[String], ports: &[u16]) -> Servers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for ns in namespaces {
            for &port in ports {
                let stop = stop.clone();
                let ready = ready_tx.clone();
                let ns2 = ns.clone();
                threads.push(in_netns(ns, move || serve(&ns2, port, &stop, &ready)));
            }
        }
        for _ in 0..threads.len() {
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a server thread started");
        }
        Servers { stop, threads }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve(ns: &str, port: u16, stop: &AtomicBool, ready: &std::sync::mpsc::Sender<()>) {
    let any = SocketAddr::from(([0, 0, 0, 0], port));
    let tcp = TcpListener::bind(any).unwrap_or_else(|e| panic!("{ns}: tcp {port}: {e}"));
    let udp = UdpSocket::bind(any).unwrap_or_else(|e| panic!("{ns}: udp {port}: {e}"));
    tcp.set_nonblocking(true).expect("nonblocking");
    udp.set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let _ = ready.send(());
    let born = Instant::now();
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) && born.elapsed() < SERVER_LIFETIME {
        while let Ok((mut s, peer)) = tcp.accept() {
            let _ = s.write_all(format!("ok {}\n", peer.ip()).as_bytes());
        }
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    }
}

/// UDP source ports for probes: counted up from a per-run random start, below the kernel's
/// ephemeral range (32768 and up).
fn next_udp_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 2_000) as u16 * 4,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let p = NEXT.fetch_add(1, Ordering::SeqCst);
    if p >= 32_000 {
        NEXT.store(20_000, Ordering::SeqCst);
    }
    p
}

/// One probe from inside namespace `from` to `to:port`.
pub fn probe(from: &str, to: IpAddr, port: u16, proto: Proto) -> bool {
    match proto {
        Proto::Icmp => std::process::Command::new("ip")
            .args(["netns", "exec", from, "ping", "-c", "1", "-W"])
            .arg(TIMEOUT.as_secs().max(1).to_string())
            .arg(to.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        Proto::Tcp => seen_source(from, to, port).is_some(),
        Proto::Udp => in_netns(from, move || {
            // A source port never used before in this run: a port the kernel reused could
            // match a conntrack entry of an earlier probe that policy allowed then.
            let port_from = next_udp_port();
            let bind = if to.is_ipv6() {
                SocketAddr::from(([0u16; 8], port_from))
            } else {
                SocketAddr::from(([0, 0, 0, 0], port_from))
            };
            let Ok(s) = UdpSocket::bind(bind) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(TIMEOUT));
            if s.send_to(b"probe", SocketAddr::new(to, port)).is_err() {
                return false;
            }
            let mut buf = [0u8; 16];
            matches!(s.recv_from(&mut buf), Ok((5, _))) && &buf[..5] == b"probe"
        })
        .join()
        .unwrap_or(false),
    }
}

/// A TCP connection from inside namespace `from` to `to:port`: the source address the server
/// saw (it answers `ok <peer address>`), or None when the connection or the answer failed.
pub fn seen_source(from: &str, to: IpAddr, port: u16) -> Option<IpAddr> {
    in_netns(from, move || {
        let mut s = TcpStream::connect_timeout(&SocketAddr::new(to, port), TIMEOUT).ok()?;
        let _ = s.set_read_timeout(Some(TIMEOUT));
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        answer.strip_prefix("ok ")?.trim().parse().ok()
    })
    .join()
    .ok()
    .flatten()
}

/// A probe target or source: a name for reports, its namespace and its address.
#[derive(Debug, Clone)]
pub struct Host {
    /// Short name (`x/a`, `host`).
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// The address others probe.
    pub ip: IpAddr,
}

/// Results by (source, destination, protocol).
pub type Matrix = BTreeMap<(String, String, Proto), bool>;

/// Probes every source to every other destination on `port` with every protocol, all at once.
pub fn matrix(hosts: &[Host], port: u16) -> Matrix {
    let mut jobs = Vec::new();
    for from in hosts {
        for to in hosts.iter().filter(|t| t.name != from.name) {
            for proto in Proto::ALL {
                let (ns, ip) = (from.ns.clone(), to.ip);
                let key = (from.name.clone(), to.name.clone(), proto);
                jobs.push((key, std::thread::spawn(move || probe(&ns, ip, port, proto))));
            }
        }
    }
    jobs.into_iter()
        .map(|(k, j)| (k, j.join().unwrap_or(false)))
        .collect()
}

/// The expected matrix, from a rule.
pub fn expected(hosts: &[Host], want: impl Fn(&str, &str, Proto) -> bool) -> Matrix {
    let mut m = Matrix::new();
    for from in hosts {
        for to in hosts.iter().filter(|t| t.name != from.name) {
            for proto in Proto::ALL {
                let v = want(&from.name, &to.name, proto);
                m.insert((from.name.clone(), to.name.clone(), proto), v);
            }
        }
    }
    m
}

/// The matrix as a table (rows: sources, columns: destinations; each cell `TUI` for the
/// protocols that got through, `.` for those that did not), marking cells that differ from
/// `want` with `*`.
pub fn table(hosts: &[Host], got: &Matrix, want: Option<&Matrix>) -> String {
    let mut s = format!("{:>8}", "from\\to");
    for h in hosts {
        let _ = write!(s, " {:>7}", h.name);
    }
    s.push('\n');
    for from in hosts {
        let _ = write!(s, "{:>8}", from.name);
        for to in hosts {
            if to.name == from.name {
                let _ = write!(s, " {:>7}", "-");
                continue;
            }
            let mut cell = String::new();
            let mut differs = false;
            for (p, c) in Proto::ALL.iter().zip(['T', 'U', 'I']) {
                let k = (from.name.clone(), to.name.clone(), *p);
                let g = got.get(&k).copied().unwrap_or(false);
                cell.push(if g { c } else { '.' });
                differs |= want.is_some_and(|w| w.get(&k).copied().unwrap_or(false) != g);
            }
            if differs {
                cell.push('*');
            }
            let _ = write!(s, " {cell:>7}");
        }
        s.push('\n');
    }
    s
}
