//! Interop with GoBGP: eBGP and iBGP sessions over IPv4 and IPv6 transport, routes both ways
//! (GoBGP runs without zebra, so its side is checked in its RIB through the `gobgp` CLI).

mod common;
use common::*;

fn gobgp_conf(local_as: u32, remote_as: u32) -> String {
    let mut s =
        format!("[global.config]\n  as = {local_as}\n  router-id = \"198.18.3.2\"\n  port = 179\n");
    for (addr, fam) in [
        ("198.18.3.1", "ipv4-unicast"),
        ("2001:db8:3::1", "ipv6-unicast"),
    ] {
        s += &format!(
            r#"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{addr}"
    peer-as = {remote_as}
  [neighbors.timers.config]
    connect-retry = 2
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "{fam}"
"#
        );
    }
    s
}

fn brindle_conf(local_as: u32, remote_as: u32) -> String {
    format!(
        r#"
local_as: {local_as}
router_id: 198.18.3.1
idle_hold_seconds: 1
originate:
  - prefix: 198.19.60.0/24
  - prefix: "2001:db8:60::/48"
peers:
  - address: 198.18.3.2
    remote_as: {remote_as}
    hold_time: 9
    connect_retry: 2
  - address: "2001:db8:3::2"
    remote_as: {remote_as}
    hold_time: 9
    connect_retry: 2
"#
    )
}

fn run(local_as: u32, remote_as: u32) {
    require(&["ip", "gobgpd", "gobgp"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r = lab.ns("r");
    lab.link(
        &b,
        "vb",
        &["198.18.3.1/24", "2001:db8:3::1/64"],
        &r,
        "vr",
        &["198.18.3.2/24", "2001:db8:3::2/64"],
    );
    let (_, port) = lab.gobgp(&r, "gobgp", &gobgp_conf(remote_as, local_as));
    lab.brindle(&b, "brindle", &brindle_conf(local_as, remote_as));
    lab.wait_brindle_established("brindle", "198.18.3.2", 40);
    lab.wait_brindle_established("brindle", "2001:db8:3::2", 40);
    let nb = lab.gobgp_cli(&r, port, "neighbor");
    assert!(nb.matches("Establ").count() == 2, "{nb}");

    for cmd in [
        "global rib add 198.19.50.0/24 -a ipv4",
        "global rib add 2001:db8:50::/48 -a ipv6",
    ] {
        let out = lab.gobgp_cli(&r, port, cmd);
        assert!(!out.to_lowercase().contains("error"), "{cmd}: {out}");
    }
    lab.wait_route(&b, false, "proto 80", "198.19.50.0/24 via 198.18.3.2", 20);
    lab.wait_route(
        &b,
        true,
        "proto 80",
        "2001:db8:50::/48 via 2001:db8:3::2",
        20,
    );

    wait_for("GoBGP learns Brindle's prefixes", 20, || {
        let v4 = lab.gobgp_cli(&r, port, "global rib -a ipv4");
        let v6 = lab.gobgp_cli(&r, port, "global rib -a ipv6");
        (v4.contains("198.19.60.0/24")
            && v4.contains("198.18.3.1")
            && v6.contains("2001:db8:60::/48")
            && v6.contains("2001:db8:3::1"))
        .then_some(())
    });
    let v4 = lab.gobgp_cli(&r, port, "global rib -a ipv4 198.19.60.0/24");
    if local_as != remote_as {
        assert!(v4.contains(&local_as.to_string()), "{v4}");
    }
    lab.gobgp_cli(&r, port, "global rib del 198.19.50.0/24 -a ipv4");
    wait_for("withdrawn route removed from the kernel", 20, || {
        (!lab.routes(&b, false, "proto 80").contains("198.19.50.0/24")).then_some(())
    });
}

#[test]
fn ebgp_with_gobgp_ipv4_and_ipv6() {
    run(65001, 65004);
}

#[test]
fn ibgp_with_gobgp_ipv4_and_ipv6() {
    run(65001, 65001);
}
