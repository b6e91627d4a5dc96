//! TCP MD5 (RFC 2385) with BIRD and FRR, a wrong password that must not come up, and GTSM
//! (RFC 5082) with BIRD: matching settings come up, a neighbor sending TTL 1 does not.

mod common;
use common::*;

fn bird(id: &str, local: &str, nb: &str, extra: &str) -> String {
    format!(
        r#"
router id {id};
log stderr all;
protocol device {{ scan time 2; }}
protocol static s4 {{ ipv4; route 198.19.80.0/24 blackhole; }}
protocol bgp b4 {{
  local {local} as 65002; neighbor {nb} as 65001; {extra}
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export where source = RTS_STATIC; }};
}}
"#
    )
}

fn frr(local_as: u32, nb: &str, nb_as: u32, password: &str) -> String {
    format!(
        "frr defaults traditional\nhostname frr\nrouter bgp {local_as}\n bgp router-id 198.18.7.2\n \
         no bgp ebgp-requires-policy\n neighbor {nb} remote-as {nb_as}\n neighbor {nb} password {password}\n \
         neighbor {nb} timers 3 9\n neighbor {nb} timers connect 2\n"
    )
}

#[test]
fn md5_with_bird_and_frr_and_wrong_password() {
    require(&["ip", "bird", "birdc", "vtysh", "/usr/lib/frr/bgpd"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r1 = lab.ns("r1");
    let r2 = lab.ns("r2");
    let r3 = lab.ns("r3");
    lab.link(&b, "v1", &["198.18.6.1/24"], &r1, "vr", &["198.18.6.2/24"]);
    lab.link(&b, "v2", &["198.18.7.1/24"], &r2, "vr", &["198.18.7.2/24"]);
    lab.link(&b, "v3", &["198.18.8.1/24"], &r3, "vr", &["198.18.8.2/24"]);
    lab.bird(
        &r1,
        "bird",
        &bird(
            "198.18.6.2",
            "198.18.6.2",
            "198.18.6.1",
            "password \"s3cret-bird\";",
        ),
    );
    lab.frr(&r2, "frr", &frr(65003, "198.18.7.1", 65001, "s3cret-frr"));
    lab.bird(
        &r3,
        "wrong",
        &bird(
            "198.18.8.2",
            "198.18.8.2",
            "198.18.8.1",
            "password \"not-this-one\";",
        ),
    );
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.6.1
idle_hold_seconds: 1
peers:
  - { address: 198.18.6.2, remote_as: 65002, password: s3cret-bird, hold_time: 9, connect_retry: 2 }
  - { address: 198.18.7.2, remote_as: 65003, password: s3cret-frr, hold_time: 9, connect_retry: 2 }
  - { address: 198.18.8.2, remote_as: 65002, password: right-one, hold_time: 9, connect_retry: 2 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.6.2", 30);
    lab.wait_brindle_established("brindle", "198.18.7.2", 40);
    lab.wait_bird_established("bird", "b4", 5);
    lab.wait_frr_established("frr", "198.18.7.1", 5);
    lab.wait_route(&b, false, "proto 80", "198.19.80.0/24 via 198.18.6.2", 20);
    // Both sides have tried several times by now (connect retry 2 s); still nothing.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let st = lab.status("brindle").expect("status");
    let wrong = st.peer("198.18.8.2").expect("peer");
    assert_ne!(wrong.state, "Established", "{wrong:?}");
    assert!(
        !lab.birdc("wrong", "show protocols b4")
            .contains("Established")
    );
}

#[test]
fn gtsm_with_bird() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r1 = lab.ns("r1");
    let r2 = lab.ns("r2");
    lab.link(&b, "v1", &["198.18.9.1/24"], &r1, "vr", &["198.18.9.2/24"]);
    lab.link(
        &b,
        "v2",
        &["198.18.10.1/24"],
        &r2,
        "vr",
        &["198.18.10.2/24"],
    );
    // r1 speaks GTSM like us; r2 sends TTL 1 (plain eBGP), which GTSM must drop.
    lab.bird(
        &r1,
        "gtsm",
        &bird("198.18.9.2", "198.18.9.2", "198.18.9.1", "ttl security on;"),
    );
    lab.bird(
        &r2,
        "plain",
        &bird("198.18.10.2", "198.18.10.2", "198.18.10.1", ""),
    );
    lab.brindle(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.9.1
idle_hold_seconds: 1
peers:
  - { address: 198.18.9.2, remote_as: 65002, ttl_security: 1, hold_time: 9, connect_retry: 2 }
  - { address: 198.18.10.2, remote_as: 65002, ttl_security: 1, hold_time: 9, connect_retry: 2 }
"#,
    );
    lab.wait_brindle_established("brindle", "198.18.9.2", 30);
    lab.wait_bird_established("gtsm", "b4", 5);
    std::thread::sleep(std::time::Duration::from_secs(6));
    let st = lab.status("brindle").expect("status");
    let plain = st.peer("198.18.10.2").expect("peer");
    assert_ne!(plain.state, "Established", "{plain:?}");
    assert!(
        !lab.birdc("plain", "show protocols b4")
            .contains("Established")
    );
    // Every neighbor uses GTSM, so the listener itself drops a SYN that arrives with a TTL
    // below 255: no handshake at all. With TTL 255 the handshake completes.
    let connect_with_ttl = |ttl: u32| {
        in_netns(&r2, move || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            s.set_ttl_v4(ttl).expect("ttl");
            let addr: std::net::SocketAddr = "198.18.10.1:179".parse().expect("addr");
            s.connect_timeout(&addr.into(), std::time::Duration::from_secs(2))
                .map_err(|e| e.kind())
        })
        .join()
        .expect("connect thread")
    };
    assert_eq!(
        connect_with_ttl(64),
        Err(std::io::ErrorKind::TimedOut),
        "a TTL-64 SYN must not get a handshake"
    );
    assert_eq!(connect_with_ttl(255), Ok(()));
}
