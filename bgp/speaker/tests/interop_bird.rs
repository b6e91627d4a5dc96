//! Interop with BIRD 2: eBGP and iBGP sessions over IPv4 and IPv6 transport, routes both
//! ways, and what each side installs in its kernel table.

mod common;
use common::*;

fn bird_conf(local_as: u32, remote_as: u32) -> String {
    let direct = if local_as == remote_as { "direct;" } else { "" };
    format!(
        r#"
router id 198.18.1.2;
log stderr all;
protocol device {{ scan time 2; }}
protocol kernel k4 {{ ipv4 {{ export where source = RTS_BGP; import none; }}; }}
protocol kernel k6 {{ ipv6 {{ export where source = RTS_BGP; import none; }}; }}
protocol static s4 {{ ipv4; route 198.19.20.0/24 blackhole; }}
protocol static s6 {{ ipv6; route 2001:db8:20::/48 blackhole; }}
protocol bgp b4 {{
  local 198.18.1.2 as {local_as}; neighbor 198.18.1.1 as {remote_as}; {direct}
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export where source = RTS_STATIC; }};
}}
protocol bgp b6 {{
  local 2001:db8:1::2 as {local_as}; neighbor 2001:db8:1::1 as {remote_as}; {direct}
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv6 {{ import all; export where source = RTS_STATIC; }};
}}
"#
    )
}

fn brindle_conf(local_as: u32, remote_as: u32) -> String {
    format!(
        r#"
local_as: {local_as}
router_id: 198.18.1.1
listen_port: 179
idle_hold_seconds: 1
originate:
  - prefix: 198.19.10.0/24
  - prefix: "2001:db8:10::/48"
peers:
  - address: 198.18.1.2
    remote_as: {remote_as}
    hold_time: 9
    connect_retry: 2
  - address: "2001:db8:1::2"
    remote_as: {remote_as}
    hold_time: 9
    connect_retry: 2
"#
    )
}

fn run(local_as: u32, remote_as: u32) {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r = lab.ns("r");
    lab.link(
        &b,
        "vb",
        &["198.18.1.1/24", "2001:db8:1::1/64"],
        &r,
        "vr",
        &["198.18.1.2/24", "2001:db8:1::2/64"],
    );
    lab.bird(&r, "bird", &bird_conf(remote_as, local_as));
    lab.brindle(&b, "brindle", &brindle_conf(local_as, remote_as));

    lab.wait_brindle_established("brindle", "198.18.1.2", 30);
    lab.wait_brindle_established("brindle", "2001:db8:1::2", 30);
    lab.wait_bird_established("bird", "b4", 10);
    lab.wait_bird_established("bird", "b6", 10);

    // BIRD → Brindle → Brindle's kernel, marked proto 80.
    lab.wait_route(&b, false, "proto 80", "198.19.20.0/24 via 198.18.1.2", 20);
    lab.wait_route(
        &b,
        true,
        "proto 80",
        "2001:db8:20::/48 via 2001:db8:1::2",
        20,
    );
    // Brindle → BIRD → BIRD's kernel.
    lab.wait_route(&r, false, "proto bird", "198.19.10.0/24 via 198.18.1.1", 20);
    lab.wait_route(
        &r,
        true,
        "proto bird",
        "2001:db8:10::/48 via 2001:db8:1::1",
        20,
    );
    let shown = lab.birdc("bird", "show route 198.19.10.0/24 all");
    if local_as != remote_as {
        assert!(
            shown.contains(&format!("BGP.as_path: {local_as}")),
            "{shown}"
        );
    } else {
        assert!(shown.contains("BGP.local_pref: 100"), "{shown}");
    }
    // Originated prefixes are never installed by Brindle itself (no blackhole configured).
    let own = lab.routes(&b, false, "proto 80");
    assert!(!own.contains("198.19.10.0"), "{own}");

    // Withdrawal: BIRD disables its static route, Brindle removes the kernel route.
    lab.birdc("bird", "disable s4");
    wait_for("withdrawn route removed from the kernel", 20, || {
        (!lab.routes(&b, false, "proto 80").contains("198.19.20.0/24")).then_some(())
    });
    let v6 = lab.routes(&b, true, "proto 80");
    assert!(
        v6.contains("2001:db8:20::/48"),
        "IPv6 route must stay: {v6}"
    );
}

#[test]
fn ebgp_with_bird_ipv4_and_ipv6() {
    run(65001, 65002);
}

#[test]
fn ibgp_with_bird_ipv4_and_ipv6() {
    run(65001, 65001);
}
