//! eBGP multihop and source address binding across a router namespace: with `multihop: 2`
//! and `local_address`, a passive BIRD two hops away (which only accepts connections from
//! that source address) comes up; without multihop our TTL-1 packets die at the router and
//! the session never does.

mod common;
use common::*;

fn bird(id: &str, nb: &str) -> String {
    format!(
        r#"
router id {id};
log stderr all;
protocol device {{ scan time 2; }}
protocol static s4 {{ ipv4; route 198.19.190.0/24 blackhole; }}
protocol bgp b4 {{
  local {id} as 65002; neighbor {nb} as 65001; multihop 2; passive on;
  hold time 9;
  ipv4 {{ import all; export where source = RTS_STATIC; }};
}}
"#
    )
}

#[test]
fn multihop_ttl_and_source_address() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let m = lab.ns("m");
    let r1 = lab.ns("r1");
    let r2 = lab.ns("r2");
    lab.link(
        &b,
        "vb",
        &["198.18.40.1/24", "198.18.40.10/24"],
        &m,
        "vmb",
        &["198.18.40.2/24"],
    );
    lab.link(
        &m,
        "vm1",
        &["198.18.41.1/24"],
        &r1,
        "vr",
        &["198.18.41.2/24"],
    );
    lab.link(
        &m,
        "vm2",
        &["198.18.42.1/24"],
        &r2,
        "vr",
        &["198.18.42.2/24"],
    );
    lab.forwarding(&m);
    for (ns, net, via) in [
        (&b, "198.18.41.0/24", "198.18.40.2"),
        (&b, "198.18.42.0/24", "198.18.40.2"),
        (&r1, "198.18.40.0/24", "198.18.41.1"),
        (&r2, "198.18.40.0/24", "198.18.42.1"),
    ] {
        sh(&["ip", "-n", ns, "route", "add", net, "via", via]);
    }
    lab.bird(&r1, "r1", &bird("198.18.41.2", "198.18.40.10"));
    lab.bird(&r2, "r2", &bird("198.18.42.2", "198.18.40.10"));
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.40.1
idle_hold_seconds: 1
peers:
  - { address: 198.18.41.2, remote_as: 65002, multihop: 2, local_address: 198.18.40.10, hold_time: 9, connect_retry: 1 }
  - { address: 198.18.42.2, remote_as: 65002, local_address: 198.18.40.10, hold_time: 9, connect_retry: 1 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.41.2", 30);
    lab.wait_bird_established("r1", "b4", 5);
    lab.wait_brindle_route("brindle", "198.19.190.0/24", "198.18.41.2", 10);
    let ss = sh(&[
        "ip",
        "netns",
        "exec",
        &b,
        "ss",
        "-tnH",
        "state",
        "established",
    ]);
    assert!(
        ss.contains("198.18.40.10:") && ss.contains("198.18.41.2:179"),
        "{ss}"
    );
    // Several connect attempts later the TTL-1 neighbor is still down.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let st = lab.status("brindle").expect("status");
    let r2 = st.peer("198.18.42.2").expect("peer");
    assert_ne!(r2.state, "Established", "{r2:?}");
    assert!(!lab.birdc("r2", "show protocols b4").contains("Established"));
}
