//! Interop with FRR (zebra + bgpd): eBGP and iBGP sessions over IPv4 and IPv6 transport,
//! routes both ways, and what each side installs in its kernel table.

mod common;
use common::*;

pub fn frr_conf(local_as: u32, remote_as: u32) -> String {
    format!(
        r#"frr defaults traditional
hostname frr
log stdout informational
router bgp {local_as}
 bgp router-id 198.18.2.2
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 neighbor 198.18.2.1 remote-as {remote_as}
 neighbor 198.18.2.1 timers 3 9
 neighbor 198.18.2.1 timers connect 2
 neighbor 2001:db8:2::1 remote-as {remote_as}
 neighbor 2001:db8:2::1 timers 3 9
 neighbor 2001:db8:2::1 timers connect 2
 address-family ipv4 unicast
  network 198.19.30.0/24
  neighbor 198.18.2.1 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:30::/48
  neighbor 2001:db8:2::1 activate
 exit-address-family
"#
    )
}

fn brindle_conf(local_as: u32, remote_as: u32) -> String {
    format!(
        r#"
local_as: {local_as}
router_id: 198.18.2.1
idle_hold_seconds: 1
originate:
  - prefix: 198.19.40.0/24
  - prefix: "2001:db8:40::/48"
peers:
  - address: 198.18.2.2
    remote_as: {remote_as}
    hold_time: 9
    connect_retry: 2
  - address: "2001:db8:2::2"
    remote_as: {remote_as}
    hold_time: 9
    connect_retry: 2
"#
    )
}

fn run(local_as: u32, remote_as: u32) {
    require(&["ip", "vtysh", "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r = lab.ns("r");
    lab.link(
        &b,
        "vb",
        &["198.18.2.1/24", "2001:db8:2::1/64"],
        &r,
        "vr",
        &["198.18.2.2/24", "2001:db8:2::2/64"],
    );
    lab.frr(&r, "frr", &frr_conf(remote_as, local_as));
    lab.brindle(&b, "brindle", &brindle_conf(local_as, remote_as));

    lab.wait_brindle_established("brindle", "198.18.2.2", 40);
    lab.wait_brindle_established("brindle", "2001:db8:2::2", 40);
    lab.wait_frr_established("frr", "198.18.2.1", 10);
    lab.wait_frr_established("frr", "2001:db8:2::1", 10);

    lab.wait_route(&b, false, "proto 80", "198.19.30.0/24 via 198.18.2.2", 20);
    lab.wait_route(
        &b,
        true,
        "proto 80",
        "2001:db8:30::/48 via 2001:db8:2::2",
        20,
    );
    // zebra installs with nexthop objects: "198.19.40.0/24 nhid N via 198.18.2.1 ...".
    let k = lab.wait_route(&r, false, "proto bgp", "198.19.40.0/24", 20);
    assert!(k.contains("via 198.18.2.1"), "{k}");
    lab.wait_route(&r, true, "proto bgp", "2001:db8:40::/48", 20);
    let shown = lab.vtysh("frr", "show bgp ipv4 unicast 198.19.40.0/24");
    if local_as != remote_as {
        assert!(shown.contains(&local_as.to_string()), "{shown}");
    } else {
        assert!(shown.contains("Local"), "{shown}");
    }
    // FRR withdraws; Brindle removes the kernel route.
    let cmd = format!(
        "configure terminal\nrouter bgp {remote_as}\naddress-family ipv4 unicast\nno network 198.19.30.0/24"
    );
    let d = lab.path("frr");
    let ds = d.to_str().unwrap_or_default();
    let mut args = vec!["vtysh", "--vty_socket", ds, "--config_dir", ds];
    for line in cmd.lines() {
        args.push("-c");
        args.push(line);
    }
    sh(&args);
    wait_for("withdrawn route removed from the kernel", 20, || {
        (!lab.routes(&b, false, "proto 80").contains("198.19.30.0/24")).then_some(())
    });
}

#[test]
fn ebgp_with_frr_ipv4_and_ipv6() {
    run(65001, 65003);
}

#[test]
fn ibgp_with_frr_ipv4_and_ipv6() {
    run(65001, 65001);
}
