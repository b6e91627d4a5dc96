//! Next-hop reachability (RFC 4271 §9.1.2.1) through the kernel's routes. BIRD (iBGP, next
//! hops kept) offers two prefixes: one with its own address as next hop, one with a next hop
//! 198.18.70.9 that Brindle's namespace has no route to. Only the first is installed, and the
//! status marks the other's path unreachable. An operator's static route to 198.18.70.0/24
//! via BIRD makes it resolvable: within seconds it is installed through that route's gateway
//! (the kernel refuses a gateway that is not directly connected). Deleting the static route
//! takes it out again.

mod common;
use common::*;

fn path_unreachable(lab: &Lab, prefix: &str) -> Option<bool> {
    let st = lab.status("brindle")?;
    let r = st.routes.iter().find(|r| r.prefix == prefix)?;
    Some(r.paths.iter().all(|p| p.nexthop_unreachable))
}

#[test]
fn routes_with_unreachable_next_hops_are_not_installed_until_they_resolve() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r = lab.ns("r");
    lab.link(&b, "v1", &["198.18.32.1/24"], &r, "vr", &["198.18.32.2/24"]);
    lab.bird(
        &r,
        "bird",
        r#"
router id 198.18.32.2;
log stderr all;
protocol device { scan time 2; }
protocol static s4 {
  ipv4;
  route 198.19.5.0/24 blackhole;
  route 198.19.6.0/24 blackhole;
}
protocol bgp b4 {
  local 198.18.32.2 as 65001; neighbor 198.18.32.1 as 65001;
  hold time 9; connect retry time 1;
  ipv4 {
    import all;
    next hop keep;
    export filter {
      if net = 198.19.5.0/24 then bgp_next_hop = 198.18.70.9;
      accept;
    };
  };
}
"#,
    );
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.32.1
idle_hold_seconds: 1
peers:
  - { address: 198.18.32.2, remote_as: 65001, hold_time: 9, connect_retry: 1 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.32.2", 30);
    lab.wait_route(&b, false, "proto 80", "198.19.6.0/24 via 198.18.32.2", 10);
    lab.wait_brindle_route("brindle", "198.19.5.0/24", "198.18.32.2", 10);
    wait_for("the path via 198.18.70.9 is marked unreachable", 10, || {
        (path_unreachable(&lab, "198.19.5.0/24") == Some(true)).then_some(())
    });
    // The status file is rewritten every 200 ms: wait for one that has both routes.
    wait_for("the path via BIRD is a candidate", 10, || {
        (path_unreachable(&lab, "198.19.6.0/24") == Some(false)).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        !lab.routes(&b, false, "proto 80").contains("198.19.5.0/24"),
        "an unresolvable next hop is not installed"
    );

    // An operator's route makes 198.18.70.9 resolvable through BIRD.
    sh(&[
        "ip",
        "-n",
        &b,
        "route",
        "add",
        "198.18.70.0/24",
        "via",
        "198.18.32.2",
    ]);
    lab.wait_route(&b, false, "proto 80", "198.19.5.0/24 via 198.18.32.2", 10);
    wait_for("the path via 198.18.70.9 is a candidate", 10, || {
        (path_unreachable(&lab, "198.19.5.0/24") == Some(false)).then_some(())
    });

    // And it goes with that route.
    sh(&[
        "ip",
        "-n",
        &b,
        "route",
        "del",
        "198.18.70.0/24",
        "via",
        "198.18.32.2",
    ]);
    wait_for("the route goes with its next hop", 10, || {
        (!lab.routes(&b, false, "proto 80").contains("198.19.5.0/24")).then_some(())
    });
    assert!(lab.routes(&b, false, "proto 80").contains("198.19.6.0/24"));
}
