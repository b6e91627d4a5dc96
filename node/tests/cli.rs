//! `brindlectl`'s status commands against a fixed status snapshot served by the real status
//! API on a Unix socket: golden output for every format (`BRINDLE_REGEN=1` rewrites the files
//! under `tests/golden/cli/`), the one-line message when the daemon is down, and a caller of
//! another uid refused by the server (SO_PEERCRED) with PERMISSION_DENIED.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use brindle_bgp_core::{
    CapabilitySummary, FamilyCounters, Instant as CoreInstant, LastError, MessageCount,
    MessageCounters, PathStatus, PeerStatus, PeerType, RouteAttrs, RouteSource, RouteStatus, State,
};
use brindle_bgp_wire::{AsPath, Community, Family, Prefix};
use brindle_crds::document::resource_from_value;
use brindle_node::cache::Snapshot;
use brindle_node::status::{NodeStatus, PeerState};
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn peer(addr: &str, remote_as: u32, state: State) -> PeerStatus {
    let up = state == State::Established;
    PeerStatus {
        address: ip(addr),
        local_as: 64512,
        remote_as,
        peer_type: if remote_as == 64512 {
            PeerType::Ibgp
        } else {
            PeerType::Ebgp
        },
        route_reflector_client: false,
        admin_up: true,
        state,
        established_since: None,
        flaps: if up { 1 } else { 0 },
        last_error: None,
        families: [(
            if addr.contains(':') {
                Family::IPV6_UNICAST
            } else {
                Family::IPV4_UNICAST
            },
            FamilyCounters {
                received: if up { 3 } else { 0 },
                accepted: if up { 2 } else { 0 },
                advertised: if up { 1 } else { 0 },
            },
        )]
        .into(),
        capabilities: up.then(|| CapabilitySummary {
            hold_time: 90,
            keepalive: 30,
            remote_router_id: "198.18.10.2".parse().unwrap(),
            families: vec![Family::IPV4_UNICAST],
            four_octet_as: true,
            extended_message: false,
            route_refresh: true,
            enhanced_route_refresh: false,
            graceful_restart: Some(120),
            sent: vec![
                "multiprotocol ipv4-unicast".into(),
                "route-refresh".into(),
                "4-octet-as".into(),
                "graceful-restart".into(),
            ],
            received: vec!["multiprotocol ipv4-unicast".into(), "route-refresh".into()],
        }),
        stale_families: vec![],
        messages: MessageCounters {
            sent: MessageCount {
                open: 1,
                update: 2,
                notification: 0,
                keepalive: 40,
                route_refresh: 0,
            },
            received: MessageCount {
                open: 1,
                update: 4,
                notification: 0,
                keepalive: 41,
                route_refresh: 0,
            },
        },
        configured_hold_time: 90,
        send_blocked: false,
        backlog_prefixes: 0,
        out_queue_bytes: 0,
    }
}

/// A node with a mesh peer (up), a ToR whose AS is wrong (down) and an IPv6 peer (idle).
fn fixed_status() -> NodeStatus {
    let docs = [
        json!({"apiVersion": "brindle.dev/v1", "kind": "Node", "metadata": {"name": "node-1"},
            "spec": {"bgp": {"ipv4Address": "198.18.10.1/24", "ipv6Address": "2001:db8::1/64"}}}),
        json!({"apiVersion": "brindle.dev/v1", "kind": "Node", "metadata": {"name": "node-2"},
            "spec": {"bgp": {"ipv4Address": "198.18.10.2/24"}}}),
        json!({"apiVersion": "brindle.dev/v1", "kind": "BGPPeer", "metadata": {"name": "tor"},
            "spec": {"peerIP": "198.18.10.254", "asNumber": 65101}}),
        json!({"apiVersion": "brindle.dev/v1", "kind": "BGPPeer", "metadata": {"name": "tor6"},
            "spec": {"peerIP": "2001:db8::fe", "asNumber": 65100}}),
    ];
    let snap = Snapshot::from_resources(docs.into_iter().map(|d| resource_from_value(d).unwrap()));
    let desired = brindle_node::desired::desired_bgp(&snap, "node-1").expect("desired");
    let mut tor = peer("198.18.10.254", 65101, State::Active);
    tor.last_error = Some(LastError {
        text: "OPEN rejected, OPEN Message Error / Bad Peer AS: the peer sent AS 65100 and hold \
               time 240; we expect AS 65101"
            .into(),
        notification: Some(brindle_bgp_wire::ErrorCode::Open(
            brindle_bgp_wire::OpenSubcode::BadPeerAs,
        )),
        sent: true,
        at: CoreInstant::ZERO,
    });
    let mesh = peer("198.18.10.2", 64512, State::Established);
    let v6 = peer("2001:db8::fe", 65100, State::Idle);
    let attrs = RouteAttrs {
        next_hop: Some(ip("198.18.10.2")),
        as_path: AsPath::default(),
        local_pref: Some(100),
        communities: vec![Community(64512 << 16 | 100)],
        ..RouteAttrs::default()
    };
    let route = RouteStatus {
        prefix: Prefix::v4("198.19.1.0".parse().unwrap(), 26).unwrap(),
        paths: vec![PathStatus {
            source: RouteSource::Peer(ip("198.18.10.2")),
            attrs: attrs.clone(),
            ebgp: false,
            peer_router_id: "198.18.10.2".parse().unwrap(),
            best: true,
            multipath: false,
            stale: false,
            since: CoreInstant::ZERO,
            nexthop_unreachable: false,
        }],
    };
    let ebgp_route = RouteStatus {
        prefix: Prefix::v4("198.19.100.0".parse().unwrap(), 24).unwrap(),
        paths: vec![PathStatus {
            source: RouteSource::Peer(ip("198.18.10.2")),
            attrs: RouteAttrs {
                as_path: AsPath::from_sequence(vec![65100, 65200]),
                med: Some(10),
                ..attrs
            },
            ebgp: false,
            peer_router_id: "198.18.10.2".parse().unwrap(),
            best: true,
            multipath: false,
            stale: true,
            since: CoreInstant::ZERO,
            nexthop_unreachable: false,
        }],
    };
    let state = |status: PeerStatus, since: u64| PeerState {
        since: Duration::from_secs(since),
        last_error_age: status.last_error.as_ref().map(|_| Duration::from_secs(12)),
        status,
    };
    NodeStatus {
        node: "node-1".into(),
        datastore: "sqlite:/var/lib/brindle/brindle.db".into(),
        started: None,
        in_sync: true,
        last_change: None,
        desired: Some(desired),
        desired_error: None,
        datastore_error: None,
        policy_error: None,
        policy: None,
        peers: vec![state(mesh, 3725), state(tor, 12), state(v6, 90_061)],
        routes: vec![route, ebgp_route],
        fib: BTreeMap::from([(
            Prefix::v4("198.19.1.0".parse().unwrap(), 26).unwrap(),
            vec![ip("198.18.10.2")],
        )]),
        blocks: 1,
        addresses_in_use: 3,
        dataplane_problems: vec![],
        fib_stats: None,
        updated: None,
        speaker: None,
        kernel_excluded: vec![],
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cli")
}

fn ctl(bin: &Path, args: &[&str], as_uid: Option<u32>) -> (i32, String, String) {
    let mut c = match as_uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "--",
            ])
            .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let out = c
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run brindlectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_commands_golden_down_and_denied() {
    let bin = brindle_tests::workspace_bin("brindlectl");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("node-1.sock");
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(fixed_status()));
    let _server = brindle_node::api::serve(&sock, rx).await.unwrap();
    let s = sock.to_str().unwrap().to_string();
    let regen = std::env::var("BRINDLE_REGEN").is_ok();
    let cases: &[(&str, &[&str])] = &[
        ("node-status", &["node", "status"]),
        ("node-summary", &["node", "summary"]),
        ("node-summary-json", &["node", "summary", "-o", "json"]),
        ("bgp-peers", &["bgp", "peers"]),
        ("bgp-peers-wide", &["bgp", "peers", "-o", "wide"]),
        ("bgp-peers-json", &["bgp", "peers", "-o", "json"]),
        ("bgp-peers-yaml", &["bgp", "peers", "-o", "yaml"]),
        ("bgp-peer", &["bgp", "peer", "198.18.10.254"]),
        ("bgp-routes", &["bgp", "routes"]),
        ("bgp-routes-json", &["bgp", "routes", "-o", "json"]),
        ("bgp-routes-lookup", &["bgp", "routes", "198.19.1.7"]),
    ];
    std::fs::create_dir_all(golden_dir()).unwrap();
    let mut mismatches = Vec::new();
    for (name, args) in cases {
        let mut a = args.to_vec();
        a.extend(["--socket", &s]);
        let b = bin.clone();
        let a: Vec<String> = a.iter().map(|x| x.to_string()).collect();
        let (code, out, err) = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            ctl(&b, &a, None)
        })
        .await
        .unwrap();
        // `node status` exits 1 when a session is down (as calicoctl does); the rest 0.
        let want_code = if *name == "node-status" { 1 } else { 0 };
        assert_eq!(code, want_code, "{name}: {out}{err}");
        let text = out.replace(&s, "SOCKET");
        let file = golden_dir().join(format!("{name}.txt"));
        if regen {
            std::fs::write(&file, &text).unwrap();
        } else {
            let want = std::fs::read_to_string(&file)
                .unwrap_or_else(|_| panic!("{} missing: run with BRINDLE_REGEN=1", file.display()));
            if want != text {
                mismatches.push(format!(
                    "--- {name} (want)\n{want}\n--- {name} (got)\n{text}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // Daemon down: non-zero, one line naming the socket.
    let gone = dir.path().join("gone.sock");
    let g = gone.to_str().unwrap().to_string();
    let b = bin.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || ctl(&b, &["bgp", "peers", "--socket", &g], None))
            .await
            .unwrap();
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(gone.to_str().unwrap()), "{err}");

    // Another uid reaches the socket (we open it up on purpose) and is refused by the server.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy of the binary that uid 65534 can run wherever the checkout lives (say, under a
    // 0700 home directory).
    let b = dir.path().join("brindlectl");
    std::fs::copy(&bin, &b).unwrap();
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        ctl(&b, &["bgp", "peers", "--socket", &s], Some(65534))
    })
    .await
    .unwrap();
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("uid 65534 may not query this node"),
        "stdout {out} stderr {err}"
    );
}

/// `WatchPeers`: the current state of every session first, then one event per state change,
/// with the state it left; a status published without changes sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_peers_streams_state_changes() {
    use brindle_proto::status as pb;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("node-1.sock");
    let st = fixed_status();
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(st.clone()));
    let _server = brindle_node::api::serve(&sock, rx).await.unwrap();
    let mut client = brindle_proto::connect_unix(&sock).await.unwrap();
    let mut events = client
        .watch_peers(pb::WatchPeersRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut first = Vec::new();
    for _ in 0..3 {
        let ev = next(&mut events).await;
        let p = ev.peer.unwrap();
        first.push((p.address, p.state, ev.previous));
    }
    first.sort();
    let st_of = |s: pb::SessionState| s as i32;
    assert_eq!(
        first,
        [
            (
                "198.18.10.2".to_string(),
                st_of(pb::SessionState::Established),
                0
            ),
            (
                "198.18.10.254".to_string(),
                st_of(pb::SessionState::Active),
                0
            ),
            ("2001:db8::fe".to_string(), st_of(pb::SessionState::Idle), 0),
        ]
    );
    // Published again unchanged: nothing. Then the ToR comes up: one event.
    tx.send(Arc::new(st.clone())).unwrap();
    let mut up = st.clone();
    up.peers[1].status.state = State::Established;
    tx.send(Arc::new(up)).unwrap();
    let ev = next(&mut events).await;
    let p = ev.peer.unwrap();
    assert_eq!(p.address, "198.18.10.254");
    assert_eq!(p.state, st_of(pb::SessionState::Established));
    assert_eq!(ev.previous, st_of(pb::SessionState::Active));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.message())
            .await
            .is_err(),
        "no other event"
    );
}

async fn next(
    events: &mut tonic::Streaming<brindle_proto::status::PeerEvent>,
) -> brindle_proto::status::PeerEvent {
    tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .expect("an event in time")
        .unwrap()
        .expect("the stream is open")
}
