//! Per-neighbor import and export rules from the `brindle-bgp` file (BGPFilter spelling)
//! against BIRD: BIRD offers three prefixes, the import rules refuse one by CIDR and one by
//! length; Brindle originates two, the export rules hold one back. Both sides' tables show
//! exactly what the rules allow.

mod common;
use common::*;

#[test]
fn import_and_export_rules_from_the_file() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r = lab.ns("r");
    lab.link(&b, "v1", &["198.18.31.1/24"], &r, "vr", &["198.18.31.2/24"]);
    lab.bird(
        &r,
        "bird",
        r#"
router id 198.18.31.2;
log stderr all;
protocol device { scan time 2; }
protocol static s4 {
  ipv4;
  route 198.19.1.0/24 blackhole;
  route 198.19.2.128/25 blackhole;
  route 198.20.0.0/16 blackhole;
}
protocol bgp b4 {
  local 198.18.31.2 as 65002; neighbor 198.18.31.1 as 65001;
  hold time 9; connect retry time 1;
  ipv4 { import all; export where source = RTS_STATIC; };
}
"#,
    );
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.31.1
idle_hold_seconds: 1
kernel: { enabled: false }
originate:
  - prefix: 198.18.100.0/24
  - prefix: 198.18.101.0/24
peers:
  - address: 198.18.31.2
    remote_as: 65002
    hold_time: 9
    connect_retry: 1
    import:
      - { action: Reject, matchOperator: In, cidr: 198.20.0.0/16 }
      - { action: Accept, cidr: 198.19.0.0/16, prefixLength: { max: 24 } }
      - { action: Reject }
    export:
      - { action: Reject, matchOperator: Equal, cidr: 198.18.101.0/24 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.31.2", 30);
    lab.wait_brindle_route("brindle", "198.19.1.0/24", "198.18.31.2", 10);
    let bird_routes = wait_for("BIRD learns Brindle's exported prefix", 10, || {
        let r = lab.birdc("bird", "show route protocol b4");
        r.contains("198.18.100.0/24").then_some(r)
    });
    // Give a refused route every chance to show up before checking it did not.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let st = lab.status("brindle").expect("status");
    let learned: Vec<&str> = st
        .routes
        .iter()
        .filter(|r| r.paths.iter().any(|p| p.source == "198.18.31.2"))
        .map(|r| r.prefix.as_str())
        .collect();
    assert_eq!(learned, vec!["198.19.1.0/24"], "{st:?}");
    let peer = st.peer("198.18.31.2").expect("peer");
    assert_eq!(
        peer.families.get("afi 1/safi 1").map(|c| (c.0, c.1)),
        Some((3, 1)),
        "3 received, 1 accepted: {peer:?}"
    );
    let bird_routes = format!(
        "{bird_routes}{}",
        lab.birdc("bird", "show route protocol b4")
    );
    assert!(
        !bird_routes.contains("198.18.101.0/24"),
        "the export rule holds 198.18.101.0/24 back: {bird_routes}"
    );
}
