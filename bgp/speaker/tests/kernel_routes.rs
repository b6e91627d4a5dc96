//! Kernel routes: ECMP (RTA_MULTIPATH) from two BIRD neighbors over IPv4 and IPv6, blackhole
//! routes for originated blocks, leftovers of ours removed at a fresh start, routes of other
//! protocols never touched, routes kept on SIGTERM and removed with --flush-routes-on-exit.

mod common;
use common::*;

fn bird_conf(id: &str, local4: &str, local6: &str, nb4: &str, nb6: &str) -> String {
    format!(
        r#"
router id {id};
log stderr all;
protocol device {{ scan time 2; }}
protocol static s4 {{ ipv4; route 198.19.70.0/24 blackhole; }}
protocol static s6 {{ ipv6; route 2001:db8:70::/48 blackhole; }}
protocol bgp b4 {{
  local {local4} as 65002; neighbor {nb4} as 65001;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export where source = RTS_STATIC; }};
}}
protocol bgp b6 {{
  local {local6} as 65002; neighbor {nb6} as 65001;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv6 {{ import all; export where source = RTS_STATIC; }};
}}
"#
    )
}

const BRINDLE: &str = r#"
local_as: 65001
router_id: 198.18.4.1
idle_hold_seconds: 1
max_paths: 4
originate:
  - prefix: 198.19.71.0/26
    blackhole: true
  - prefix: "2001:db8:71::/64"
    blackhole: true
  - prefix: 198.19.72.0/24
peers:
  - { address: 198.18.4.2, remote_as: 65002, hold_time: 9, connect_retry: 2 }
  - { address: 198.18.5.2, remote_as: 65002, hold_time: 9, connect_retry: 2 }
  - { address: "2001:db8:4::2", remote_as: 65002, hold_time: 9, connect_retry: 2 }
  - { address: "2001:db8:5::2", remote_as: 65002, hold_time: 9, connect_retry: 2 }
"#;

#[test]
fn ecmp_blackholes_ownership_and_exit() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r1 = lab.ns("r1");
    let r2 = lab.ns("r2");
    lab.link(
        &b,
        "v1",
        &["198.18.4.1/24", "2001:db8:4::1/64"],
        &r1,
        "vr",
        &["198.18.4.2/24", "2001:db8:4::2/64"],
    );
    lab.link(
        &b,
        "v2",
        &["198.18.5.1/24", "2001:db8:5::1/64"],
        &r2,
        "vr",
        &["198.18.5.2/24", "2001:db8:5::2/64"],
    );
    // Not ours: a static route for the same prefix, and one of ours left from a previous run.
    sh(&[
        "ip",
        "-n",
        &b,
        "route",
        "add",
        "198.19.70.0/24",
        "via",
        "198.18.4.2",
        "proto",
        "static",
        "metric",
        "500",
    ]);
    sh(&[
        "ip",
        "-n",
        &b,
        "route",
        "add",
        "198.19.73.0/24",
        "via",
        "198.18.5.2",
        "proto",
        "static",
    ]);
    sh(&[
        "ip",
        "-n",
        &b,
        "route",
        "add",
        "blackhole",
        "198.19.99.0/24",
        "proto",
        "80",
        "metric",
        "32",
    ]);
    lab.bird(
        &r1,
        "bird1",
        &bird_conf(
            "198.18.4.2",
            "198.18.4.2",
            "2001:db8:4::2",
            "198.18.4.1",
            "2001:db8:4::1",
        ),
    );
    lab.bird(
        &r2,
        "bird2",
        &bird_conf(
            "198.18.5.2",
            "198.18.5.2",
            "2001:db8:5::2",
            "198.18.5.1",
            "2001:db8:5::1",
        ),
    );
    let p = lab.brindle(&b, "brindle", BRINDLE);

    for peer in ["198.18.4.2", "198.18.5.2", "2001:db8:4::2", "2001:db8:5::2"] {
        lab.wait_brindle_established("brindle", peer, 30);
    }
    // ECMP over both neighbors, IPv4 and IPv6.
    wait_for("IPv4 ECMP route", 20, || {
        let r = lab.routes(&b, false, "proto 80 198.19.70.0/24");
        (r.contains("nexthop via 198.18.4.2") && r.contains("nexthop via 198.18.5.2")).then_some(())
    });
    wait_for("IPv6 ECMP route", 20, || {
        let r = lab.routes(&b, true, "proto 80 2001:db8:70::/48");
        (r.contains("via 2001:db8:4::2") && r.contains("via 2001:db8:5::2")).then_some(())
    });
    // Blackholes for the originated blocks that asked for one, not for the other.
    let own4 = lab.routes(&b, false, "proto 80");
    assert!(own4.contains("blackhole 198.19.71.0/26"), "{own4}");
    assert!(!own4.contains("198.19.72.0"), "{own4}");
    let own6 = lab.routes(&b, true, "proto 80");
    assert!(own6.contains("blackhole 2001:db8:71::/64"), "{own6}");
    // Our leftover from "before" is gone (fresh start, no graceful restart); others untouched.
    assert!(!own4.contains("198.19.99.0"), "{own4}");
    let statics = lab.routes(&b, false, "proto static");
    assert!(
        statics.contains("198.19.70.0/24 via 198.18.4.2"),
        "{statics}"
    );
    assert!(statics.contains("198.19.73.0/24"), "{statics}");

    // One neighbor goes away: the ECMP route shrinks to one next hop.
    lab.birdc("bird2", "disable b4");
    wait_for("ECMP route shrinks", 20, || {
        let r = lab.routes(&b, false, "proto 80 198.19.70.0/24");
        (r.contains("via 198.18.4.2") && !r.contains("198.18.5.2")).then_some(())
    });

    // SIGTERM: neighbors get Cease/Administrative Shutdown, kernel routes stay.
    assert!(
        lab.terminate(p, 10),
        "brindle did not stop on SIGTERM\n{}",
        lab.logs()
    );
    let proto = lab.birdc("bird1", "show protocols all b4");
    assert!(
        proto.to_lowercase().contains("administrative shutdown"),
        "{proto}"
    );
    let after = lab.routes(&b, false, "proto 80");
    assert!(
        after.contains("198.19.70.0/24") && after.contains("blackhole 198.19.71.0/26"),
        "{after}"
    );

    // Again with --flush-routes-on-exit: every route of ours goes, the static ones stay.
    lab.birdc("bird2", "enable b4");
    let p = lab.brindle_args(&b, "brindle2", BRINDLE, &["--flush-routes-on-exit"]);
    lab.wait_brindle_established("brindle2", "198.18.4.2", 30);
    assert!(
        lab.terminate(p, 10),
        "brindle did not stop on SIGTERM\n{}",
        lab.logs()
    );
    let v4 = lab.routes(&b, false, "proto 80");
    let v6 = lab.routes(&b, true, "proto 80");
    assert!(
        v4.trim().is_empty() && v6.trim().is_empty(),
        "left: {v4} {v6}"
    );
    let statics = lab.routes(&b, false, "proto static");
    assert!(
        statics.contains("198.19.70.0/24") && statics.contains("198.19.73.0/24"),
        "{statics}"
    );
}

/// An operator's static route at the speaker's own metric (32) for a prefix the speaker then
/// learns: the static route is neither replaced nor, after the withdrawal, deleted; the conflict
/// is logged. Once the operator removes it, the learned route goes in.
#[test]
fn a_foreign_route_at_our_metric_is_left_alone() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r1 = lab.ns("r1");
    lab.link(
        &b,
        "v1",
        &["198.18.4.1/24", "2001:db8:4::1/64"],
        &r1,
        "vr",
        &["198.18.4.2/24", "2001:db8:4::2/64"],
    );
    sh(&[
        "ip",
        "-n",
        &b,
        "route",
        "add",
        "198.19.70.0/24",
        "via",
        "198.18.4.2",
        "proto",
        "static",
        "metric",
        "32",
    ]);
    lab.bird(
        &r1,
        "bird1",
        &bird_conf(
            "198.18.4.2",
            "198.18.4.2",
            "2001:db8:4::2",
            "198.18.4.1",
            "2001:db8:4::1",
        ),
    );
    let conf = "
local_as: 65001
router_id: 198.18.4.1
idle_hold_seconds: 1
peers:
  - { address: 198.18.4.2, remote_as: 65002, hold_time: 9, connect_retry: 2 }
";
    let p = lab.brindle(&b, "brindle", conf);
    lab.wait_brindle_established("brindle", "198.18.4.2", 30);
    lab.wait_brindle_route("brindle", "198.19.70.0/24", "198.18.4.2", 20);
    wait_for("the conflict to be logged", 10, || {
        lab.log(p).contains("route_conflict").then_some(())
    });
    let r = lab.routes(&b, false, "198.19.70.0/24");
    assert!(r.contains("proto static") && !r.contains("proto 80"), "{r}");
    // The peer withdraws: the static route stays.
    lab.birdc("bird1", "disable s4");
    wait_for("the withdrawal", 20, || {
        let st = lab.status("brindle")?;
        (!st.routes.iter().any(|r| r.prefix == "198.19.70.0/24")).then_some(())
    });
    let r = lab.routes(&b, false, "198.19.70.0/24");
    assert!(
        r.contains("proto static"),
        "the operator's route was deleted: {r}"
    );
    // The prefix comes back from BGP: a conflict again.
    lab.birdc("bird1", "enable s4");
    lab.wait_brindle_route("brindle", "198.19.70.0/24", "198.18.4.2", 20);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let r = lab.routes(&b, false, "198.19.70.0/24");
    assert!(r.contains("proto static") && !r.contains("proto 80"), "{r}");
    // The operator removes theirs, with no BGP change: ours goes in at once (the route
    // monitor saw the prefix vacated), well before the 10 s resync.
    sh(&[
        "ip",
        "-n",
        &b,
        "route",
        "del",
        "198.19.70.0/24",
        "proto",
        "static",
        "metric",
        "32",
    ]);
    let t = std::time::Instant::now();
    lab.wait_route(&b, false, "198.19.70.0/24", "proto 80", 20);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "ours took {:?} to take the vacated prefix",
        t.elapsed()
    );
}
