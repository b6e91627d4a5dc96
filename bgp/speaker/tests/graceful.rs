//! Graceful restart (RFC 4724) with BIRD in both roles:
//! * Brindle as helper: BIRD is SIGKILLed and restarted with `-R`; Brindle keeps its routes
//!   (marked stale) in the kernel the whole time.
//! * Brindle as restarting speaker: Brindle is SIGKILLed and restarted while a ping runs
//!   across its kernel routes; not one packet is lost, and a leftover route of ours that is no
//!   longer wanted is removed once the RIB is synced.

mod common;
use common::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Sample `ip route show` every 50 ms (at most `max` times) until stopped; counts the samples
/// in which `needle` was missing.
fn watch_route(
    ns: String,
    prefix: String,
    needle: String,
    max: usize,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
    std::thread::JoinHandle<usize>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let missing = Arc::new(AtomicUsize::new(0));
    let (s, m) = (stop.clone(), missing.clone());
    let h = std::thread::spawn(move || {
        let mut n = 0;
        while !s.load(Ordering::Relaxed) && n < max {
            let (_, out) = try_sh(&["ip", "-n", &ns, "route", "show", &prefix, "proto", "80"]);
            if !out.contains(&needle) {
                m.fetch_add(1, Ordering::Relaxed);
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    });
    (stop, missing, h)
}

#[test]
fn brindle_helps_bird_restart_without_flap() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r = lab.ns("r");
    lab.link(&b, "vb", &["198.18.13.1/24"], &r, "vr", &["198.18.13.2/24"]);
    let conf = r#"
router id 198.18.13.2;
log stderr all;
protocol device { scan time 2; }
protocol static s4 { ipv4; route 198.19.110.0/24 blackhole; }
protocol bgp b4 {
  local 198.18.13.2 as 65002; neighbor 198.18.13.1 as 65001;
  hold time 9; connect retry time 1; error wait time 1, 5;
  graceful restart on; graceful restart time 60;
  ipv4 { import all; export where source = RTS_STATIC; };
}
"#;
    let bird = lab.bird(&r, "bird", conf);
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.13.1
idle_hold_seconds: 1
graceful_restart: { restart_time: 60 }
peers:
  - { address: 198.18.13.2, remote_as: 65002, hold_time: 9, connect_retry: 1 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.13.2", 30);
    lab.wait_route(&b, false, "proto 80", "198.19.110.0/24 via 198.18.13.2", 20);
    let st = lab.status("brindle").expect("status");
    let p = st.peer("198.18.13.2").expect("peer");
    assert!(p.hold_time.is_some(), "{p:?}");

    let (stop, missing, h) = watch_route(
        b.clone(),
        "198.19.110.0/24".into(),
        "via 198.18.13.2".into(),
        600,
    );
    lab.kill(bird);
    wait_for("Brindle holds BIRD's routes stale", 15, || {
        let st = lab.status("brindle")?;
        let p = st.peer("198.18.13.2")?;
        (p.state != "Established" && !p.stale_families.is_empty()).then_some(())
    });
    let st = lab.status("brindle").expect("status");
    let stale = st
        .routes
        .iter()
        .any(|r| r.prefix == "198.19.110.0/24" && r.paths.iter().any(|p| p.stale));
    assert!(stale, "route should be marked stale: {st:?}");

    // BIRD comes back in graceful restart recovery mode.
    let c = lab.path("bird.conf");
    let s = lab.path("bird.ctl");
    lab.spawn(
        &r,
        "bird-restarted",
        &[
            "bird",
            "-R",
            "-f",
            "-c",
            c.to_str().unwrap_or_default(),
            "-s",
            s.to_str().unwrap_or_default(),
        ],
    );
    lab.wait_brindle_established("brindle", "198.18.13.2", 30);
    wait_for("stale mark cleared after End-of-RIB", 30, || {
        let st = lab.status("brindle")?;
        let fresh = st
            .routes
            .iter()
            .any(|r| r.prefix == "198.19.110.0/24" && r.paths.iter().any(|p| !p.stale));
        let p = st.peer("198.18.13.2")?;
        (fresh && p.stale_families.is_empty()).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let samples = h.join().unwrap_or(0);
    assert!(samples > 10, "too few samples: {samples}");
    assert_eq!(
        missing.load(Ordering::Relaxed),
        0,
        "kernel route flapped during BIRD's restart\n{}",
        lab.logs()
    );
}

#[test]
fn brindle_restarts_without_losing_packets() {
    require(&["ip", "bird", "birdc", "ping"]);
    let mut lab = Lab::new();
    let a = lab.ns("a");
    let b = lab.ns("b");
    let r = lab.ns("r");
    let c = lab.ns("c");
    lab.link(
        &a,
        "va",
        &["198.18.20.2/24"],
        &b,
        "vba",
        &["198.18.20.1/24"],
    );
    lab.link(
        &b,
        "vbr",
        &["198.18.21.1/24"],
        &r,
        "vrb",
        &["198.18.21.2/24"],
    );
    lab.link(
        &r,
        "vrc",
        &["198.18.22.1/24"],
        &c,
        "vc",
        &["198.18.22.2/24"],
    );
    sh(&[
        "ip",
        "-n",
        &a,
        "route",
        "add",
        "default",
        "via",
        "198.18.20.1",
    ]);
    sh(&[
        "ip",
        "-n",
        &c,
        "route",
        "add",
        "default",
        "via",
        "198.18.22.1",
    ]);
    lab.forwarding(&b);
    lab.forwarding(&r);
    lab.bird(
        &r,
        "bird",
        r#"
router id 198.18.21.2;
log stderr all;
protocol device { scan time 2; }
protocol direct { ipv4; interface "vrc"; }
protocol kernel k4 { ipv4 { export where source = RTS_BGP; import none; }; }
protocol bgp b4 {
  local 198.18.21.2 as 65002; neighbor 198.18.21.1 as 65001;
  hold time 9; connect retry time 1; error wait time 1, 5;
  graceful restart on;
  ipv4 { import all; export where source = RTS_DEVICE; };
}
"#,
    );
    let yaml = r#"
local_as: 65001
router_id: 198.18.21.1
idle_hold_seconds: 1
graceful_restart: { restart_time: 60, selection_deferral: 30 }
originate:
  - prefix: 198.18.20.0/24
peers:
  - { address: 198.18.21.2, remote_as: 65002, hold_time: 9, connect_retry: 1 }
"#;
    let first = lab.brindle(&b, "brindle", yaml);
    lab.wait_brindle_established("brindle", "198.18.21.2", 30);
    lab.wait_route(&b, false, "proto 80", "198.18.22.0/24 via 198.18.21.2", 20);
    lab.wait_route(
        &r,
        false,
        "proto bird",
        "198.18.20.0/24 via 198.18.21.1",
        20,
    );
    // A route of ours that the next run will not want.
    sh(&[
        "ip",
        "-n",
        &b,
        "route",
        "add",
        "blackhole",
        "198.19.120.0/24",
        "proto",
        "80",
        "metric",
        "32",
    ]);

    let ping = lab.spawn(
        &a,
        "ping",
        &[
            "ping",
            "-n",
            "-q",
            "-c",
            "300",
            "-i",
            "0.02",
            "-W",
            "1",
            "198.18.22.2",
        ],
    );
    std::thread::sleep(Duration::from_millis(1000));
    lab.kill(first);
    std::thread::sleep(Duration::from_millis(500));
    lab.brindle(&b, "brindle2", yaml);
    lab.wait_brindle_established("brindle2", "198.18.21.2", 30);
    // The restarting speaker syncs (End-of-RIB from BIRD), then removes the unwanted leftover.
    wait_for("leftover route removed after sync", 30, || {
        (!lab
            .routes(&b, false, "proto 80")
            .contains("198.19.120.0/24"))
        .then_some(())
    });
    let kept = lab.routes(&b, false, "proto 80");
    assert!(kept.contains("198.18.22.0/24 via 198.18.21.2"), "{kept}");
    let status = wait_for("ping to finish", 30, || {
        lab.procs[ping].child.try_wait().ok().flatten()
    });
    let out = lab.log(ping);
    assert!(
        status.success() && out.contains(" 0% packet loss"),
        "packets lost across the restart:\n{out}\n{}",
        lab.logs()
    );
    let restarted = lab.log(lab.procs.len() - 1);
    assert!(
        restarted.contains("restarting=true"),
        "second run should start as restarting speaker:\n{restarted}"
    );
}
