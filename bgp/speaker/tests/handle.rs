//! The library API in-process: two instances, each on its own thread inside its own network
//! namespace (setns is per thread; each runs a current-thread runtime there), changed at run
//! time through their `SpeakerHandle`s while a BIRD session on the same instance must not
//! notice.

mod common;
use common::*;

use std::net::IpAddr;
use std::time::Duration;

use brindle_bgp_core::State;
use brindle_bgp_core::{OriginAttrs, SpeakerConfig};
use brindle_bgp_speaker::config::parse_prefix;
use brindle_bgp_speaker::{DriverConfig, NeighborConfig, OriginConfig, SpeakerHandle};

fn instance(ns: &str, cfg: DriverConfig) -> (SpeakerHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = in_netns(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (h, task) = brindle_bgp_speaker::start(cfg).await.expect("start");
            tx.send(h).expect("hand over");
            let _ = task.await;
        });
    });
    (
        rx.recv_timeout(Duration::from_secs(10))
            .expect("instance started"),
        t,
    )
}

fn neighbor(addr: &str, asn: u32) -> NeighborConfig {
    let mut n = NeighborConfig::new(addr.parse().expect("addr"), asn);
    n.peer.hold_time = 9;
    n.peer.connect_retry = Duration::from_secs(1);
    n
}

async fn wait_state(h: &SpeakerHandle, peer: &str, want: State, secs: u64) {
    let addr: IpAddr = peer.parse().expect("addr");
    for _ in 0..secs * 10 {
        if h.peer(addr).await.expect("peer").map(|p| p.state) == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{peer} not {want} after {secs} s: {:?}", h.peer(addr).await);
}

#[test]
fn runtime_changes_through_the_handle() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let r = lab.ns("r");
    lab.link(
        &a,
        "vab",
        &["198.18.30.1/24"],
        &b,
        "vba",
        &["198.18.30.2/24"],
    );
    lab.link(
        &a,
        "var",
        &["198.18.31.1/24"],
        &r,
        "vra",
        &["198.18.31.2/24"],
    );
    lab.bird(
        &r,
        "bird",
        r#"
router id 198.18.31.2;
log stderr all;
protocol device { scan time 2; }
protocol bgp b4 {
  local 198.18.31.2 as 65002; neighbor 198.18.31.1 as 65001;
  hold time 9; connect retry time 1;
  ipv4 { import all; export none; };
}
"#,
    );
    let mut cfg_a = DriverConfig::new(SpeakerConfig::new(
        65001,
        "198.18.30.1".parse().expect("id"),
    ));
    cfg_a.speaker.idle_hold_initial = Duration::from_secs(1);
    cfg_a.neighbors.push(neighbor("198.18.31.2", 65002));
    let mut cfg_b = DriverConfig::new(SpeakerConfig::new(
        65003,
        "198.18.30.2".parse().expect("id"),
    ));
    cfg_b.kernel.enabled = false;
    let (ha, ta) = instance(&a, cfg_a);
    let (hb, tb) = instance(&b, cfg_b);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        wait_state(&ha, "198.18.31.2", State::Established, 30).await;
        // Add neighbors at run time on both sides (B passive).
        ha.add_peer(neighbor("198.18.30.2", 65003))
            .await
            .expect("add");
        assert!(
            ha.add_peer(neighbor("198.18.30.2", 65003)).await.is_err(),
            "duplicate add must fail"
        );
        let mut nb = neighbor("198.18.30.1", 65001);
        nb.peer.passive = true;
        hb.add_peer(nb).await.expect("add");
        wait_state(&ha, "198.18.30.2", State::Established, 30).await;

        // Originate with a blackhole: B learns it, A's kernel has the blackhole.
        let p = parse_prefix("198.19.180.0/24").expect("prefix");
        ha.originate(OriginConfig {
            prefix: p,
            attrs: OriginAttrs::default(),
            blackhole: true,
        })
        .await
        .expect("originate");
        for _ in 0..100 {
            if hb
                .routes()
                .await
                .expect("routes")
                .iter()
                .any(|r| r.prefix == p)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let routes = hb.routes().await.expect("routes");
        assert!(routes.iter().any(|r| r.prefix == p), "{routes:?}");
        // With the kernel disabled on B the core keeps no FIB table, and nothing lands.
        assert!(hb.installed_routes().await.expect("installed").is_empty());
        let kb = lab.routes(&b, false, "proto 80");
        assert!(kb.trim().is_empty(), "kernel disabled on B: {kb}");
        assert!(
            lab.routes(&a, false, "proto 80")
                .contains("blackhole 198.19.180.0/24")
        );

        // A session-relevant change (hold time) resets only that session.
        let mut changed = neighbor("198.18.30.2", 65003);
        changed.peer.hold_time = 30;
        ha.update_peer(changed).await.expect("update");
        let addr_b: IpAddr = "198.18.30.2".parse().expect("a");
        let mut reset = false;
        for _ in 0..300 {
            let st = ha.peer(addr_b).await.expect("peer").expect("exists");
            if st.flaps == 1 && st.state == State::Established {
                reset = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(reset, "{:?}", ha.peer(addr_b).await);

        // Withdraw, then remove the neighbor.
        ha.withdraw(p).await.expect("withdraw");
        for _ in 0..100 {
            if !hb
                .routes()
                .await
                .expect("routes")
                .iter()
                .any(|r| r.prefix == p)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !hb.routes()
                .await
                .expect("routes")
                .iter()
                .any(|r| r.prefix == p)
        );
        assert!(
            !lab.routes(&a, false, "proto 80")
                .contains("198.19.180.0/24")
        );
        ha.remove_peer("198.18.30.2".parse().expect("a"))
            .await
            .expect("remove");
        assert!(
            ha.peer("198.18.30.2".parse().expect("a"))
                .await
                .expect("peer")
                .is_none()
        );
        wait_state(&hb, "198.18.30.1", State::Active, 10).await;

        // BIRD's session on A saw none of it.
        let bird = ha
            .peer("198.18.31.2".parse().expect("a"))
            .await
            .expect("peer")
            .expect("exists");
        assert_eq!(
            (bird.state, bird.flaps),
            (State::Established, 0),
            "{bird:?}"
        );
        assert_eq!(ha.peers().await.expect("peers").len(), 1);

        ha.shutdown(true).await.expect("shutdown");
        hb.shutdown(false).await.expect("shutdown");
    });
    ta.join().expect("thread a");
    tb.join().expect("thread b");
    assert!(lab.routes(&a, false, "proto 80").trim().is_empty());
}
