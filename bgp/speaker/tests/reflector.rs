//! Route reflection: Brindle reflecting between two BIRD clients, and Brindle as a client of
//! an FRR route reflector. All speakers share one segment (a bridge in the reflector's
//! namespace), so reflected next hops are directly reachable.

mod common;
use common::*;

fn bird_client(id: &str, nb: &str, prefix: &str) -> String {
    format!(
        r#"
router id {id};
log stderr all;
protocol device {{ scan time 2; }}
protocol kernel k4 {{ ipv4 {{ export where source = RTS_BGP; import none; }}; }}
protocol static s4 {{ ipv4; route {prefix} blackhole; }}
protocol bgp up {{
  local {id} as 65001; neighbor {nb} as 65001; direct;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export where source = RTS_STATIC; }};
}}
"#
    )
}

#[test]
fn brindle_reflects_between_two_bird_clients() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("rr");
    let c1 = lab.ns("c1");
    let c2 = lab.ns("c2");
    lab.bridge(&b, "br0", &["198.18.11.1/24"]);
    lab.link_to_bridge(&b, "br0", "p1", &c1, "v", &["198.18.11.2/24"]);
    lab.link_to_bridge(&b, "br0", "p2", &c2, "v", &["198.18.11.3/24"]);
    lab.bird(
        &c1,
        "c1",
        &bird_client("198.18.11.2", "198.18.11.1", "198.19.90.0/24"),
    );
    lab.bird(
        &c2,
        "c2",
        &bird_client("198.18.11.3", "198.18.11.1", "198.19.91.0/24"),
    );
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.11.1
cluster_id: 198.18.11.100
idle_hold_seconds: 1
peers:
  - { address: 198.18.11.2, remote_as: 65001, route_reflector_client: true, hold_time: 9, connect_retry: 2 }
  - { address: 198.18.11.3, remote_as: 65001, route_reflector_client: true, hold_time: 9, connect_retry: 2 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.11.2", 30);
    lab.wait_brindle_established("brindle", "198.18.11.3", 30);
    // Each client learns the other's route, next hop unchanged, with RFC 4456 attributes.
    lab.wait_route(
        &c2,
        false,
        "proto bird",
        "198.19.90.0/24 via 198.18.11.2",
        20,
    );
    lab.wait_route(
        &c1,
        false,
        "proto bird",
        "198.19.91.0/24 via 198.18.11.3",
        20,
    );
    let shown = lab.birdc("c2", "show route 198.19.90.0/24 all");
    assert!(shown.contains("BGP.originator_id: 198.18.11.2"), "{shown}");
    assert!(shown.contains("BGP.cluster_list: 198.18.11.100"), "{shown}");
    // The reflector installs both too.
    lab.wait_route(&b, false, "proto 80", "198.19.90.0/24 via 198.18.11.2", 10);
    lab.wait_route(&b, false, "proto 80", "198.19.91.0/24 via 198.18.11.3", 10);
}

#[test]
fn brindle_as_client_of_frr_reflector() {
    require(&["ip", "bird", "birdc", "vtysh", "/usr/lib/frr/bgpd"]);
    let mut lab = Lab::new();
    let f = lab.ns("frr");
    let b = lab.ns("b");
    let c = lab.ns("c");
    lab.bridge(&f, "br0", &["198.18.12.10/24"]);
    lab.link_to_bridge(&f, "br0", "p1", &b, "v", &["198.18.12.1/24"]);
    lab.link_to_bridge(&f, "br0", "p2", &c, "v", &["198.18.12.3/24"]);
    let mut conf = String::from(
        "frr defaults traditional\nhostname rr\nrouter bgp 65001\n bgp router-id 198.18.12.10\n \
         bgp cluster-id 198.18.12.200\n",
    );
    for nb in ["198.18.12.1", "198.18.12.3"] {
        conf += &format!(
            " neighbor {nb} remote-as 65001\n neighbor {nb} timers 3 9\n neighbor {nb} timers connect 2\n"
        );
    }
    conf += " address-family ipv4 unicast\n";
    for nb in ["198.18.12.1", "198.18.12.3"] {
        conf += &format!("  neighbor {nb} route-reflector-client\n");
    }
    conf += " exit-address-family\n";
    lab.frr(&f, "frr", &conf);
    lab.bird(
        &c,
        "bird",
        &bird_client("198.18.12.3", "198.18.12.10", "198.19.92.0/24"),
    );
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.12.1
idle_hold_seconds: 1
originate:
  - prefix: 198.19.93.0/24
peers:
  - { address: 198.18.12.10, remote_as: 65001, hold_time: 9, connect_retry: 2 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.12.10", 40);
    lab.wait_frr_established("frr", "198.18.12.1", 5);
    // Brindle learns the BIRD client's route from the reflector; next hop is the client.
    lab.wait_brindle_route("brindle", "198.19.92.0/24", "198.18.12.10", 20);
    lab.wait_route(&b, false, "proto 80", "198.19.92.0/24 via 198.18.12.3", 10);
    // The BIRD client learns Brindle's route, reflected.
    lab.wait_route(
        &c,
        false,
        "proto bird",
        "198.19.93.0/24 via 198.18.12.1",
        20,
    );
    let shown = lab.birdc("bird", "show route 198.19.93.0/24 all");
    assert!(shown.contains("BGP.originator_id: 198.18.12.1"), "{shown}");
    assert!(shown.contains("BGP.cluster_list: 198.18.12.200"), "{shown}");
}
