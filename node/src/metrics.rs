//! Prometheus metrics and health endpoints over plain HTTP, both off unless an address is
//! given (`--metrics-listen`, `--health-listen`).
//!
//! - `GET /metrics`: the text exposition format, rendered from the last published
//!   [`NodeStatus`] by the pure [`render`]: session state, uptime and flaps per peer; prefixes
//!   received, accepted and advertised per peer and family; messages by type and direction;
//!   kernel route writes, failures, restorations, conflicts and write latency; datastore
//!   in-sync; IPAM use.
//! - `GET /readiness`: not ready while the datastore does not answer or policy cannot be
//!   applied; otherwise Calico's rule ([`readiness`]): during the first 30 s every peer must be
//!   Established; after that at least one must be, unless none is configured. The datastore
//!   must be in sync. 200 with "ready", or 503 naming what is not.
//! - `GET /liveness`: 200 while the daemon's loop keeps publishing its status.
//!
//! The server is a small HTTP/1.1 responder (one request per connection, bounded request
//! size and time): the endpoints are read-only and scraped a few times a minute.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brindle_bgp_core::State;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::status::NodeStatus;

/// How long after start every peer must be Established to be ready (Calico's grace rule).
pub const STARTUP: Duration = Duration::from_secs(30);

/// The loop is considered stuck when it has not published for this long.
pub const STALE: Duration = Duration::from_secs(30);

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Idle => "idle",
        State::Connect => "connect",
        State::Active => "active",
        State::OpenSent => "opensent",
        State::OpenConfirm => "openconfirm",
        State::Established => "established",
    }
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn line(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        if l.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {v}", l.join(","));
        }
    }
}

/// The metrics page for one status snapshot.
pub fn render(st: &NodeStatus) -> String {
    let mut o = Out(String::new());
    let node = st.node.as_str();
    o.head(
        "brindle_node_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    o.line(
        "brindle_node_uptime_seconds",
        &[("node", node)],
        st.started.map(|s| s.elapsed().as_secs()).unwrap_or(0),
    );
    o.head(
        "brindle_datastore_in_sync",
        "gauge",
        "1 when the watch-fed cache holds a complete listing.",
    );
    o.line(
        "brindle_datastore_in_sync",
        &[("node", node)],
        u8::from(st.in_sync),
    );
    o.head(
        "brindle_ipam_blocks",
        "gauge",
        "IPAM blocks affine to this node.",
    );
    o.line("brindle_ipam_blocks", &[("node", node)], st.blocks);
    o.head(
        "brindle_ipam_addresses_in_use",
        "gauge",
        "Addresses allocated for this node.",
    );
    o.line(
        "brindle_ipam_addresses_in_use",
        &[("node", node)],
        st.addresses_in_use,
    );
    o.head(
        "brindle_dataplane_problems",
        "gauge",
        "Things the tunnel driver cannot do here.",
    );
    o.line(
        "brindle_dataplane_problems",
        &[("node", node)],
        st.dataplane_problems.len(),
    );

    let peers: Vec<(String, &crate::status::PeerState)> = st
        .peers
        .iter()
        .map(|p| (p.status.address.to_string(), p))
        .collect();
    o.head(
        "brindle_bgp_session_state",
        "gauge",
        "1 for the session's current RFC 4271 state.",
    );
    for (a, p) in &peers {
        for s in [
            State::Idle,
            State::Connect,
            State::Active,
            State::OpenSent,
            State::OpenConfirm,
            State::Established,
        ] {
            let v = u8::from(p.status.state == s);
            o.line(
                "brindle_bgp_session_state",
                &[("peer", a), ("state", state_name(s))],
                v,
            );
        }
    }
    o.head(
        "brindle_bgp_session_established",
        "gauge",
        "1 when the session is Established.",
    );
    for (a, p) in &peers {
        let up = p.status.state == State::Established;
        o.line(
            "brindle_bgp_session_established",
            &[("peer", a)],
            u8::from(up),
        );
    }
    o.head(
        "brindle_bgp_session_uptime_seconds",
        "gauge",
        "Seconds Established (0 when down).",
    );
    for (a, p) in &peers {
        let up = p.status.state == State::Established;
        o.line(
            "brindle_bgp_session_uptime_seconds",
            &[("peer", a)],
            if up { p.since.as_secs() } else { 0 },
        );
    }
    o.head(
        "brindle_bgp_session_flaps_total",
        "counter",
        "Times the session went down.",
    );
    for (a, p) in &peers {
        o.line(
            "brindle_bgp_session_flaps_total",
            &[("peer", a)],
            p.status.flaps,
        );
    }
    o.head("brindle_bgp_prefixes", "gauge", "Routes per peer and family: received (Adj-RIB-In), accepted by import policy, advertised (Adj-RIB-Out).");
    for (a, p) in &peers {
        for (f, c) in &p.status.families {
            let fam = crate::api::family_name(f);
            for (kind, v) in [
                ("received", c.received),
                ("accepted", c.accepted),
                ("advertised", c.advertised),
            ] {
                o.line(
                    "brindle_bgp_prefixes",
                    &[("peer", a), ("family", &fam), ("kind", kind)],
                    v,
                );
            }
        }
    }
    o.head(
        "brindle_bgp_messages_total",
        "counter",
        "BGP messages by peer, direction and type.",
    );
    for (a, p) in &peers {
        let m = &p.status.messages;
        for (dir, c) in [("sent", &m.sent), ("received", &m.received)] {
            for (t, v) in [
                ("open", c.open),
                ("update", c.update),
                ("notification", c.notification),
                ("keepalive", c.keepalive),
                ("route_refresh", c.route_refresh),
            ] {
                o.line(
                    "brindle_bgp_messages_total",
                    &[("peer", a), ("direction", dir), ("type", t)],
                    v,
                );
            }
        }
    }
    o.head(
        "brindle_bgp_routes",
        "gauge",
        "Loc-RIB prefixes and the routes the speaker wants in the kernel.",
    );
    o.line("brindle_bgp_routes", &[("table", "rib")], st.routes.len());
    o.head(
        "brindle_bgp_fib_routes",
        "gauge",
        "Routes the speaker wants in the kernel.",
    );
    o.line("brindle_bgp_fib_routes", &[], st.fib.len());
    if let Some(f) = &st.fib_stats {
        o.head(
            "brindle_fib_writes_total",
            "counter",
            "Kernel route writes accepted.",
        );
        o.line("brindle_fib_writes_total", &[], f.writes);
        o.head(
            "brindle_fib_failures_total",
            "counter",
            "Kernel route writes and deletes refused.",
        );
        o.line("brindle_fib_failures_total", &[], f.failures);
        o.head(
            "brindle_fib_restored_total",
            "counter",
            "Routes of ours put back after someone deleted them.",
        );
        o.line("brindle_fib_restored_total", &[], f.restored);
        o.head(
            "brindle_fib_conflicts",
            "gauge",
            "Prefixes held by another protocol at our table and metric.",
        );
        o.line("brindle_fib_conflicts", &[], f.conflicts);
        o.head(
            "brindle_fib_write_seconds",
            "histogram",
            "Latency of kernel route writes.",
        );
        let mut cum = 0;
        for (i, n) in f.buckets.iter().enumerate() {
            cum += n;
            let le = brindle_bgp_speaker::fib_stats::LATENCY_BUCKETS
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "+Inf".into());
            o.line("brindle_fib_write_seconds_bucket", &[("le", &le)], cum);
        }
        o.line("brindle_fib_write_seconds_sum", &[], f.latency_sum);
        o.line("brindle_fib_write_seconds_count", &[], cum);
    }
    o.0
}

/// Calico's readiness rule on one snapshot, `age` after start: Ok, or the reason it is not
/// ready (naming the peers).
pub fn readiness(st: &NodeStatus, age: Duration) -> Result<(), String> {
    if !st.in_sync {
        return Err("the datastore cache is not in sync yet".into());
    }
    if let Some(e) = &st.desired_error {
        return Err(format!("the BGP configuration cannot be derived: {e}"));
    }
    if let Some(e) = &st.datastore_error {
        return Err(format!("the datastore is unreachable: {e}"));
    }
    if let Some(e) = &st.policy_error {
        return Err(format!("network policy cannot be applied: {e}"));
    }
    let down: Vec<String> = st
        .peers
        .iter()
        .filter(|p| p.status.state != State::Established)
        .map(|p| format!("{} ({})", p.status.address, p.status.state))
        .collect();
    let up = st.peers.len() - down.len();
    if down.is_empty() {
        return Ok(());
    }
    if age < STARTUP {
        return Err(format!(
            "within {}s of start every BGP peer must be Established; not yet: {}",
            STARTUP.as_secs(),
            down.join(", ")
        ));
    }
    if up > 0 {
        return Ok(());
    }
    Err(format!("no BGP peer is Established: {}", down.join(", ")))
}

/// Which pages a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// `/metrics`.
    Metrics,
    /// `/readiness` and `/liveness`.
    Health,
}

fn answer(pages: Pages, path: &str, st: &NodeStatus) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match (pages, path) {
        (Pages::Metrics, "/metrics") => {
            (200, "text/plain; version=0.0.4; charset=utf-8", render(st))
        }
        (Pages::Health, "/readiness") => {
            let age = st.started.map(|s| s.elapsed()).unwrap_or_default();
            match readiness(st, age) {
                Ok(()) => (200, TEXT, "ready\n".into()),
                Err(why) => (503, TEXT, format!("not ready: {why}\n")),
            }
        }
        (Pages::Health, "/liveness") => match st.updated {
            Some(at) if at.elapsed() < STALE => (200, TEXT, "live\n".into()),
            Some(at) => (
                503,
                TEXT,
                format!(
                    "the daemon loop last published {}s ago\n",
                    at.elapsed().as_secs()
                ),
            ),
            None => (503, TEXT, "the daemon loop has not published yet\n".into()),
        },
        _ => (404, TEXT, format!("no page {path}\n")),
    }
}

/// Serves `pages` on `addr` from the status channel until the task is aborted. Returns the
/// bound address (port 0 picks one) and the task.
pub async fn serve(
    addr: SocketAddr,
    pages: Pages,
    rx: watch::Receiver<Arc<NodeStatus>>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(target: "node.metrics", ?pages, %bound, "serving");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let rx = rx.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    let mut buf = Vec::with_capacity(1024);
                    let mut chunk = [0u8; 1024];
                    // Read the request head, at most 8 KiB.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let mut words = head.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let path = path.split('?').next().unwrap_or("");
                    let st = rx.borrow().clone();
                    let (code, ctype, body) = if method == "GET" || method == "HEAD" {
                        answer(pages, path, &st)
                    } else {
                        (405, "text/plain", "GET only\n".into())
                    };
                    let reason = match code {
                        200 => "OK",
                        404 => "Not Found",
                        405 => "Method Not Allowed",
                        _ => "Service Unavailable",
                    };
                    let head = format!(
                        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    if method != "HEAD" {
                        let _ = sock.write_all(body.as_bytes()).await;
                    }
                    let _ = sock.shutdown().await;
                })
                .await;
            });
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PeerState;
    use brindle_bgp_core::{PeerStatus, PeerType};
    use std::time::Instant;

    fn peer(addr: &str, state: State) -> PeerState {
        PeerState {
            status: PeerStatus {
                address: addr.parse().unwrap(),
                local_as: 64512,
                remote_as: 64512,
                peer_type: PeerType::Ibgp,
                route_reflector_client: false,
                admin_up: true,
                state,
                established_since: None,
                flaps: 2,
                last_error: None,
                families: Default::default(),
                capabilities: None,
                stale_families: vec![],
                messages: Default::default(),
                configured_hold_time: 90,
                send_blocked: false,
                backlog_prefixes: 0,
                out_queue_bytes: 0,
            },
            since: Duration::from_secs(7),
            last_error_age: None,
        }
    }

    /// Fetches `path` from a server of ours: (status code, body).
    async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
        let mut s =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| std::io::Error::other("connect timed out"))??;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut resp = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
            .await
            .map_err(|_| std::io::Error::other("read timed out"))??;
        let text = String::from_utf8_lossy(&resp).to_string();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    }

    fn status(peers: Vec<PeerState>) -> NodeStatus {
        NodeStatus {
            node: "n1".into(),
            in_sync: true,
            peers,
            ..Default::default()
        }
    }

    #[test]
    fn calico_readiness_rule() {
        let early = Duration::from_secs(5);
        let late = Duration::from_secs(60);
        // No peers configured: ready.
        assert!(readiness(&status(vec![]), early).is_ok());
        let mixed = status(vec![
            peer("198.18.0.2", State::Established),
            peer("198.18.0.3", State::Active),
        ]);
        let e = readiness(&mixed, early).unwrap_err();
        assert!(
            e.contains("198.18.0.3 (Active)") && !e.contains("198.18.0.2"),
            "{e}"
        );
        assert!(
            readiness(&mixed, late).is_ok(),
            "one Established is enough after 30 s"
        );
        let none = status(vec![peer("198.18.0.3", State::Connect)]);
        let e = readiness(&none, late).unwrap_err();
        assert!(e.contains("no BGP peer is Established: 198.18.0.3"), "{e}");
        let mut unsynced = status(vec![]);
        unsynced.in_sync = false;
        assert!(
            readiness(&unsynced, late)
                .unwrap_err()
                .contains("not in sync")
        );
    }

    #[test]
    fn metrics_page() {
        let st = status(vec![peer("198.18.0.3", State::Active)]);
        let page = render(&st);
        assert!(page.contains("# TYPE brindle_bgp_session_state gauge"));
        assert!(page.contains("brindle_bgp_session_state{peer=\"198.18.0.3\",state=\"active\"} 1"));
        assert!(
            page.contains("brindle_bgp_session_state{peer=\"198.18.0.3\",state=\"established\"} 0")
        );
        assert!(page.contains("brindle_bgp_session_flaps_total{peer=\"198.18.0.3\"} 2"));
        assert!(page.contains("brindle_datastore_in_sync{node=\"n1\"} 1"));
        // Every sample line is `name{labels} value` or `name value`.
        for l in page.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = l.rsplit_once(' ').unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }

    #[tokio::test]
    async fn serves_pages_over_http() {
        let mut st = status(vec![]);
        st.updated = Some(Instant::now());
        let (_tx, rx) = watch::channel(Arc::new(st));
        let (m, _t1) = serve("127.0.0.1:0".parse().unwrap(), Pages::Metrics, rx.clone())
            .await
            .unwrap();
        let (h, _t2) = serve("127.0.0.1:0".parse().unwrap(), Pages::Health, rx)
            .await
            .unwrap();
        let (code, body) = get(m, "/metrics").await.unwrap();
        assert_eq!(code, 200);
        assert!(body.contains("brindle_datastore_in_sync"));
        assert_eq!(get(m, "/readiness").await.unwrap().0, 404);
        assert_eq!(
            get(h, "/readiness").await.unwrap(),
            (200, "ready\n".to_string())
        );
        assert_eq!(get(h, "/liveness").await.unwrap().0, 200);
    }
}
