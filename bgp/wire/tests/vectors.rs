//! Annotated wire vectors for every message type and every attribute type: each is decoded to
//! the expected value and re-encoded to the same bytes.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use brindle_bgp_wire::*;
use common::{MARKER, hex, round_trip};

fn v4(a: [u8; 4], len: u8) -> Nlri {
    Nlri::new(Prefix::v4(Ipv4Addr::from(a), len).unwrap())
}

fn v6(s: &str, len: u8) -> Nlri {
    Nlri::new(Prefix::v6(s.parse().unwrap(), len).unwrap())
}

fn with_marker(rest: &str) -> Vec<u8> {
    let mut v = hex(MARKER);
    v.extend(hex(rest));
    v
}

#[test]
fn keepalive() {
    let bytes = with_marker(
        "0013 // length 19
         04   // type KEEPALIVE",
    );
    round_trip(&bytes, &SessionContext::default(), &Message::Keepalive);
}

#[test]
fn open_with_every_capability() {
    let bytes = with_marker(
        "0066          // length 102
         01            // type OPEN
         04            // version 4
         5ba0          // my AS 23456 = AS_TRANS
         00b4          // hold time 180
         c0000201      // BGP identifier 192.0.2.1
         49            // optional parameters length 73
         02 47         // parameter type 2 (capabilities), length 71
           01 04 0001 00 01          // multiprotocol IPv4 unicast
           01 04 0002 00 01          // multiprotocol IPv6 unicast
           02 00                     // route refresh
           46 00                     // enhanced route refresh (70)
           41 04 fa56ea01            // 4-octet AS 4200000001
           40 06 8078 0001 01 80     // graceful restart: R bit, 120 s; IPv4 unicast forwarding
           47 07 0001 01 80 000e10   // LLGR: IPv4 unicast, F bit, stale time 3600 s
           45 04 0001 01 03          // ADD-PATH IPv4 unicast send+receive
           05 06 0001 0001 0002      // extended next hop: IPv4 unicast over IPv6
           06 00                     // extended message
           49 0c 05 6e6f646531 05 6c6f63616c  // FQDN hostname \"node1\" domain \"local\"
           80 00                     // unknown capability 128 (pre-standard route refresh)",
    );
    let expected = Message::Open(OpenMsg {
        version: 4,
        my_as: AS_TRANS,
        hold_time: 180,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestart {
                flags: GracefulRestart::RESTART_STATE,
                restart_time: 120,
                families: vec![GrFamily {
                    family: Family::IPV4_UNICAST,
                    flags: GrFamily::FORWARDING,
                }],
            }),
            Capability::LongLivedGracefulRestart(vec![LlgrFamily {
                family: Family::IPV4_UNICAST,
                flags: 0x80,
                stale_time: 3600,
            }]),
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::BOTH,
            }]),
            Capability::ExtendedNextHop(vec![ExtendedNextHop {
                nlri_afi: Afi::IPV4,
                nlri_safi: 1,
                next_hop_afi: Afi::IPV6,
            }]),
            Capability::ExtendedMessage,
            Capability::Fqdn {
                hostname: "node1".into(),
                domain: "local".into(),
            },
            Capability::Unknown {
                code: 128,
                value: vec![],
            },
        ],
    });
    round_trip(&bytes, &SessionContext::default(), &expected);
    let Message::Open(open) = expected else {
        unreachable!()
    };
    assert_eq!(open.asn(), 4_200_000_001);
}

#[test]
fn open_without_parameters() {
    let bytes = with_marker(
        "001d      // length 29
         01        // OPEN
         04 fde8   // version 4, AS 65000
         0000      // hold time 0 (no keepalives)
         0a000001  // identifier 10.0.0.1
         00        // no optional parameters",
    );
    let expected = Message::Open(OpenMsg::new(65000, 0, Ipv4Addr::new(10, 0, 0, 1), vec![]));
    round_trip(&bytes, &SessionContext::default(), &expected);
}

#[test]
fn open_rfc9072_extended_parameters() {
    // 60 multiprotocol capabilities = 360 octets: too many for a 1-octet parameter length.
    let caps: Vec<Capability> = (0..60u16)
        .map(|i| Capability::Multiprotocol(Family::new(Afi(i), Safi(1))))
        .collect();
    let open = Message::Open(OpenMsg::new(65000, 90, Ipv4Addr::new(10, 0, 0, 1), caps));
    let bytes = open.encode(&SessionContext::default()).unwrap();
    // After the 10 fixed OPEN octets (bytes 19..29):
    assert_eq!(
        &bytes[28..35],
        &hex("ff     // Non-Ext OP Len = 255
              ff     // Non-Ext OP Type = 255: RFC 9072 format follows
              016b   // Extended Opt. Parm. Length 363 = 3 + 360
              02     // parameter type 2 (capabilities)
              0168   // parameter length 360, 2 octets")[..]
    );
    assert_eq!(bytes[28], 0xff);
    assert_eq!(bytes[29], 0xff);
    let ext_len = u16::from_be_bytes([bytes[30], bytes[31]]);
    assert_eq!(ext_len, 3 + 360);
    assert_eq!(bytes[32], 2);
    assert_eq!(u16::from_be_bytes([bytes[33], bytes[34]]), 360);
    round_trip(&bytes, &SessionContext::default(), &open);
}

#[test]
fn notification_shutdown_communication() {
    let bytes = with_marker(
        "0021    // length 33
         03      // NOTIFICATION
         06 02   // Cease / Administrative Shutdown
         0b      // shutdown communication length 11
         6d61696e74656e616e6365  // \"maintenance\"",
    );
    let expected = Message::Notification(NotificationMsg::shutdown(
        CeaseSubcode::AdministrativeShutdown,
        "maintenance",
    ));
    round_trip(&bytes, &SessionContext::default(), &expected);
    let Message::Notification(n) = expected else {
        unreachable!()
    };
    assert_eq!(n.shutdown_communication(), Some("maintenance"));
    assert_eq!(
        n.error,
        ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown)
    );
}

#[test]
fn notification_update_error_with_data() {
    let bytes = with_marker(
        "0019          // length 25
         03            // NOTIFICATION
         03 0b         // UPDATE Message Error / Malformed AS_PATH
         40 02 01 ff   // data: the offending attribute",
    );
    let expected = Message::Notification(NotificationMsg::new(
        ErrorCode::Update(UpdateSubcode::MalformedAsPath),
        vec![0x40, 0x02, 0x01, 0xff],
    ));
    round_trip(&bytes, &SessionContext::default(), &expected);
}

#[test]
fn notification_unknown_code_preserved() {
    let bytes = with_marker("0015 03 63 07 // length 21, NOTIFICATION, code 99 subcode 7");
    let expected = Message::Notification(NotificationMsg::new(
        ErrorCode::Unknown {
            code: 99,
            subcode: 7,
        },
        vec![],
    ));
    round_trip(&bytes, &SessionContext::default(), &expected);
}

#[test]
fn route_refresh_subtypes() {
    for (sub, subtype, fam_hex, family) in [
        (
            "00",
            RefreshSubtype::Normal,
            ("0001", "01"),
            Family::IPV4_UNICAST,
        ),
        (
            "01",
            RefreshSubtype::BeginOfRefresh,
            ("0002", "01"),
            Family::IPV6_UNICAST,
        ),
        (
            "02",
            RefreshSubtype::EndOfRefresh,
            ("0002", "01"),
            Family::IPV6_UNICAST,
        ),
    ] {
        let bytes = with_marker(&format!(
            "0017      // length 23
             05        // ROUTE-REFRESH
             {}        // AFI
             {sub}     // subtype (RFC 7313)
             {}        // SAFI",
            fam_hex.0, fam_hex.1
        ));
        let expected = Message::RouteRefresh(RouteRefreshMsg { family, subtype });
        round_trip(&bytes, &SessionContext::default(), &expected);
    }
}

#[test]
fn update_ipv4_every_classic_attribute_four_octet() {
    let bytes = with_marker(
        "0092              // length 146
         02                // UPDATE
         0003              // withdrawn routes length 3
           10 0a01         // 10.1.0.0/16
         0071              // total path attribute length 113
           40 01 01 00                       // ORIGIN IGP
           40 02 10                          // AS_PATH, 16 octets
             02 02 0000fde8 0000fde9         //   AS_SEQUENCE 65000 65001
             01 01 0000fdea                  //   AS_SET {65002}
           40 03 04 c0000201                 // NEXT_HOP 192.0.2.1
           80 04 04 00000064                 // MULTI_EXIT_DISC 100
           40 05 04 000000c8                 // LOCAL_PREF 200
           40 06 00                          // ATOMIC_AGGREGATE
           c0 07 08 0000fde8 c0000202        // AGGREGATOR AS 65000, 192.0.2.2
           c0 08 08 fde80001 ffffff01        // COMMUNITIES 65000:1 NO_EXPORT
           80 09 04 c0000203                 // ORIGINATOR_ID 192.0.2.3
           80 0a 08 c0000204 c0000205        // CLUSTER_LIST 192.0.2.4 192.0.2.5
           c0 10 08 0002fde800000064         // EXTENDED_COMMUNITIES RT 65000:100
           c0 20 0c 0000fde8 00000001 00000002  // LARGE_COMMUNITIES 65000:1:2
         18 0a0000         // NLRI 10.0.0.0/24
         10 c0a8           // NLRI 192.168.0.0/16",
    );
    let expected = Message::Update(UpdateMsg {
        withdrawn: vec![v4([10, 1, 0, 0], 16)],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![
                    AsSegment::sequence(vec![65000, 65001]),
                    AsSegment {
                        kind: SegmentType::Set,
                        asns: vec![65002],
                    },
                ],
            }),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            PathAttribute::MultiExitDisc(100),
            PathAttribute::LocalPref(200),
            PathAttribute::AtomicAggregate,
            PathAttribute::Aggregator(Aggregator {
                asn: 65000,
                address: Ipv4Addr::new(192, 0, 2, 2),
            }),
            PathAttribute::Communities(vec![Community::new(65000, 1), Community::NO_EXPORT]),
            PathAttribute::OriginatorId(Ipv4Addr::new(192, 0, 2, 3)),
            PathAttribute::ClusterList(vec![
                Ipv4Addr::new(192, 0, 2, 4),
                Ipv4Addr::new(192, 0, 2, 5),
            ]),
            PathAttribute::ExtendedCommunities(vec![ExtendedCommunity::route_target_as2(
                65000, 100,
            )]),
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 65000,
                local_data1: 1,
                local_data2: 2,
            }]),
        ],
        nlri: vec![v4([10, 0, 0, 0], 24), v4([192, 168, 0, 0], 16)],
    });
    let ctx = SessionContext::four_octet();
    round_trip(&bytes, &ctx, &expected);
    let Message::Update(u) = &expected else {
        unreachable!()
    };
    assert!(u.as_path().unwrap().contains(65001));
    assert!(!u.as_path().unwrap().contains(65003));
    assert_eq!(u.as_path().unwrap().path_len(), 3);
    assert_eq!(u.next_hop(), Some(Ipv4Addr::new(192, 0, 2, 1)));
}

#[test]
fn update_two_octet_with_as4_and_confederation() {
    let bytes = with_marker(
        "005a              // length 90
         02                // UPDATE
         0000              // no withdrawn routes
         003d              // total path attribute length 61
           40 01 01 02                       // ORIGIN INCOMPLETE
           40 02 0e                          // AS_PATH, 14 octets, 2-octet ASNs
             03 01 fde8                      //   AS_CONFED_SEQUENCE (65000)
             02 02 5ba0 fde9                 //   AS_SEQUENCE AS_TRANS 65001
             04 01 fdeb                      //   AS_CONFED_SET {65003}
           40 03 04 0a000001                 // NEXT_HOP 10.0.0.1
           c0 07 06 5ba0 0a000002            // AGGREGATOR AS_TRANS, 10.0.0.2
           c0 11 0a 02 02 fa56ea01 0000fde9  // AS4_PATH AS_SEQUENCE 4200000001 65001
           c0 12 08 fa56ea01 0a000002        // AS4_AGGREGATOR 4200000001, 10.0.0.2
         20 0a000001       // NLRI 10.0.0.1/32
         00                // NLRI 0.0.0.0/0",
    );
    let as_path = AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentType::ConfedSequence,
                asns: vec![65000],
            },
            AsSegment::sequence(vec![23456, 65001]),
            AsSegment {
                kind: SegmentType::ConfedSet,
                asns: vec![65003],
            },
        ],
    };
    let as4 = AsPath::from_sequence(vec![4_200_000_001, 65001]);
    let expected = Message::Update(UpdateMsg {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(Origin::Incomplete),
            PathAttribute::AsPath(as_path.clone()),
            PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)),
            PathAttribute::Aggregator(Aggregator {
                asn: 23456,
                address: Ipv4Addr::new(10, 0, 0, 2),
            }),
            PathAttribute::As4Path(as4.clone()),
            PathAttribute::As4Aggregator(Aggregator {
                asn: 4_200_000_001,
                address: Ipv4Addr::new(10, 0, 0, 2),
            }),
        ],
        nlri: vec![v4([10, 0, 0, 1], 32), v4([0, 0, 0, 0], 0)],
    });
    round_trip(&bytes, &SessionContext::default(), &expected);
    // RFC 6793 §4.2.3 reconstruction keeps the leading confederation segment.
    let merged = as_path.merge_as4(&as4);
    assert_eq!(merged.segments[0].kind, SegmentType::ConfedSequence);
    assert!(merged.contains(4_200_000_001));
    assert!(!merged.contains(23456));
}

#[test]
fn update_ipv6_mp_reach_with_link_local() {
    let bytes = with_marker(
        "005a              // length 90
         02                // UPDATE
         0000              // no withdrawn routes
         0043              // total path attribute length 67
           40 01 01 00                       // ORIGIN IGP
           40 02 06 02 01 0000fde8           // AS_PATH AS_SEQUENCE 65000
           80 0e 33                          // MP_REACH_NLRI, 51 octets
             0002 01                         //   AFI IPv6, SAFI unicast
             20                              //   next hop length 32
             20010db8000000000000000000000001  // global 2001:db8::1
             fe800000000000000000000000000001  // link-local fe80::1
             00                              //   reserved
             20 20010db8                     //   2001:db8::/32
             40 20010db800010000             //   2001:db8:1::/64",
    );
    let expected = Message::Update(UpdateMsg {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::from_sequence(vec![65000])),
            PathAttribute::MpReach(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap()),
                },
                nlri: vec![v6("2001:db8::", 32), v6("2001:db8:1::", 64)],
            }),
        ],
        nlri: vec![],
    });
    round_trip(&bytes, &SessionContext::four_octet(), &expected);
}

#[test]
fn update_ipv6_mp_unreach() {
    let bytes = with_marker(
        "0024              // length 36
         02 0000           // UPDATE, no withdrawn routes
         000d              // total path attribute length 13
           80 0f 0a                          // MP_UNREACH_NLRI, 10 octets
             0002 01                         //   AFI IPv6, SAFI unicast
             30 20010db80001                 //   2001:db8:1::/48",
    );
    let expected = Message::Update(UpdateMsg {
        withdrawn: vec![],
        attributes: vec![PathAttribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![v6("2001:db8:1::", 48)],
        })],
        nlri: vec![],
    });
    round_trip(&bytes, &SessionContext::four_octet(), &expected);
}

#[test]
fn update_ipv4_nlri_with_ipv6_next_hop_rfc8950() {
    let bytes = with_marker(
        "003a              // length 58
         02 0000           // UPDATE, no withdrawn routes
         0023              // total path attribute length 35
           40 01 01 00                       // ORIGIN IGP
           40 02 00                          // AS_PATH empty (iBGP)
           80 0e 19                          // MP_REACH_NLRI, 25 octets
             0001 01                         //   AFI IPv4, SAFI unicast
             10                              //   next hop length 16
             20010db8000000000000000000000001  // 2001:db8::1
             00                              //   reserved
             18 c63364                       //   198.51.100.0/24",
    );
    let expected = Message::Update(UpdateMsg {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::default()),
            PathAttribute::MpReach(MpReach {
                family: Family::IPV4_UNICAST,
                next_hop: NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: None,
                },
                nlri: vec![v4([198, 51, 100, 0], 24)],
            }),
        ],
        nlri: vec![],
    });
    round_trip(&bytes, &SessionContext::four_octet(), &expected);
}

#[test]
fn update_add_path_ipv4() {
    let bytes = with_marker(
        "003d              // length 61
         02                // UPDATE
         0008              // withdrawn routes length 8
           00000001 18 0a0000                // path 1: 10.0.0.0/24
         000e              // total path attribute length 14
           40 01 01 00                       // ORIGIN IGP
           40 02 00                          // AS_PATH empty
           40 03 04 0a000001                 // NEXT_HOP 10.0.0.1
         00000002 18 0a0001                  // NLRI path 2: 10.0.1.0/24
         00000003 18 0a0001                  // NLRI path 3: 10.0.1.0/24",
    );
    let p = |a: [u8; 4]| Prefix::v4(Ipv4Addr::from(a), 24).unwrap();
    let expected = Message::Update(UpdateMsg {
        withdrawn: vec![Nlri::with_path_id(p([10, 0, 0, 0]), 1)],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::default()),
            PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)),
        ],
        nlri: vec![
            Nlri::with_path_id(p([10, 0, 1, 0]), 2),
            Nlri::with_path_id(p([10, 0, 1, 0]), 3),
        ],
    });
    let mut ctx = SessionContext::four_octet();
    ctx.add_path_rx.insert(Family::IPV4_UNICAST);
    ctx.add_path_tx.insert(Family::IPV4_UNICAST);
    round_trip(&bytes, &ctx, &expected);
}

#[test]
fn update_unknown_attributes_and_partial_on_readvertise() {
    let bytes = with_marker(
        "0025              // length 37
         02 0000           // UPDATE, no withdrawn routes
         000e              // total path attribute length 14
           c0 63 03 aabbcc                   // type 99, optional transitive
           80 64 01 01                       // type 100, optional non-transitive
           e0 65 01 02                       // type 101, optional transitive partial",
    );
    let raw = |flags, type_code, value: &[u8]| {
        PathAttribute::Unknown(RawAttribute {
            flags,
            type_code,
            value: value.to_vec(),
        })
    };
    let expected = Message::Update(UpdateMsg {
        withdrawn: vec![],
        attributes: vec![
            raw(0xc0, 99, &[0xaa, 0xbb, 0xcc]),
            raw(0x80, 100, &[1]),
            raw(0xe0, 101, &[2]),
        ],
        nlri: vec![],
    });
    round_trip(&bytes, &SessionContext::four_octet(), &expected);
    let Message::Update(u) = expected else {
        unreachable!()
    };
    let passed: Vec<_> = u
        .attributes
        .iter()
        .filter_map(PathAttribute::for_readvertise)
        .collect();
    assert_eq!(
        passed,
        vec![raw(0xe0, 99, &[0xaa, 0xbb, 0xcc]), raw(0xe0, 101, &[2])]
    );
    let mut out = Vec::new();
    passed[0]
        .encode(&SessionContext::four_octet(), &mut out)
        .unwrap();
    assert_eq!(out, hex("e0 63 03 aabbcc // Partial bit now set"));
}

#[test]
fn extended_length_only_above_255() {
    // 64 communities = 256 octets: needs the Extended Length flag.
    let comms: Vec<Community> = (0..64).map(|i| Community::new(65000, i)).collect();
    let attr = PathAttribute::Communities(comms);
    let mut out = Vec::new();
    attr.encode(&SessionContext::default(), &mut out).unwrap();
    assert_eq!(
        &out[..4],
        &hex("d0 08 0100 // O|T|E flags, COMMUNITIES, length 256")[..]
    );
    // 63 communities = 252 octets: one-octet length.
    let attr = PathAttribute::Communities((0..63).map(|i| Community::new(65000, i)).collect());
    let mut out = Vec::new();
    attr.encode(&SessionContext::default(), &mut out).unwrap();
    assert_eq!(
        &out[..3],
        &hex("c0 08 fc // O|T flags, COMMUNITIES, length 252")[..]
    );
}

#[test]
fn extended_length_accepted_on_short_value() {
    // A peer may set Extended Length on a short value; it decodes, and re-encodes compactly.
    let bytes = with_marker(
        "001c 02 0000     // length 28, UPDATE, no withdrawn routes
         0005             // total path attribute length 5
           50 01 0001 00  // ORIGIN with Extended Length flag, IGP",
    );
    let d = decode_message(&bytes, &SessionContext::default()).unwrap();
    assert_eq!(
        d.msg,
        Message::Update(UpdateMsg {
            attributes: vec![PathAttribute::Origin(Origin::Igp)],
            ..Default::default()
        })
    );
}

#[test]
fn end_of_rib_markers() {
    let ipv4 = with_marker("0017 02 0000 0000 // length 23, UPDATE, nothing at all");
    round_trip(
        &ipv4,
        &SessionContext::default(),
        &Message::Update(UpdateMsg::end_of_rib_marker(Family::IPV4_UNICAST)),
    );
    let ipv6 = with_marker(
        "001d 02 0000      // length 29, UPDATE, no withdrawn routes
         0006              // total path attribute length 6
           80 0f 03 0002 01  // MP_UNREACH_NLRI IPv6 unicast, nothing withdrawn",
    );
    let eor = UpdateMsg::end_of_rib_marker(Family::IPV6_UNICAST);
    assert_eq!(eor.end_of_rib(), Some(Family::IPV6_UNICAST));
    assert_eq!(
        UpdateMsg::end_of_rib_marker(Family::IPV4_UNICAST).end_of_rib(),
        Some(Family::IPV4_UNICAST)
    );
    round_trip(&ipv6, &SessionContext::default(), &Message::Update(eor));
    // An EVPN End-of-RIB is recognised too, when the family is enabled.
    let evpn = Family::new(Afi::L2VPN, Safi(70));
    let mut ctx = SessionContext::default();
    ctx.families.insert(evpn);
    let bytes = with_marker("001d 02 0000 0006 80 0f 03 0019 46 // MP_UNREACH L2VPN EVPN");
    let d = decode_message(&bytes, &ctx).unwrap();
    let Message::Update(u) = d.msg else { panic!() };
    assert_eq!(u.end_of_rib(), Some(evpn));
}

#[test]
fn host_bits_are_zeroed_on_decode() {
    let bytes = with_marker(
        "0029 02 0000      // length 41, UPDATE
         000e              // total path attribute length 14
           40 01 01 00 40 02 00 40 03 04 0a000001  // ORIGIN, AS_PATH, NEXT_HOP
         17 0a0001         // 10.0.1.0/23: host bit set, decodes as 10.0.0.0/23",
    );
    let d = decode_message(&bytes, &SessionContext::default()).unwrap();
    let Message::Update(u) = d.msg else { panic!() };
    assert_eq!(u.nlri, vec![v4([10, 0, 0, 0], 23)]);
}

#[test]
fn framing() {
    let ka = with_marker("0013 04");
    // Need more bytes.
    assert_eq!(frame(&ka[..10], 4096), Ok(None));
    let mut two = ka.clone();
    two.extend_from_slice(&ka[..5]);
    let h = frame(&two, 4096).unwrap().unwrap();
    assert_eq!(h.length, 19);
    assert_eq!(h.kind, MessageType::Keepalive);
    // Partial body is "need more" once the header is valid.
    let upd = with_marker("0017 02 0000 0000");
    assert_eq!(frame(&upd[..20], 4096), Ok(None));
    // Bad marker → 1/1.
    let mut bad = ka.clone();
    bad[3] = 0;
    let n = frame(&bad, 4096).unwrap_err();
    assert_eq!(
        n.notification().map(|n| (n.code(), n.subcode())),
        Some((1, 1))
    );
    // Length above the maximum → 1/2 with the length as data.
    let big = with_marker("1001 02"); // 4097
    let e = frame(&big, 4096).unwrap_err();
    let n = e.notification().unwrap();
    assert_eq!(
        (n.code(), n.subcode(), n.data.as_slice()),
        (1, 2, &[0x10, 0x01][..])
    );
    // ... but fine with RFC 8654 extended messages (need more bytes).
    assert_eq!(frame(&big, 65535), Ok(None));
    // OPEN stays limited to 4096 even with extended messages.
    let open = with_marker("1001 01");
    assert!(frame(&open, 65535).is_err());
    // Bad type → 1/3 with the type as data.
    let e = frame(&with_marker("0013 09"), 4096).unwrap_err();
    let n = e.notification().unwrap();
    assert_eq!((n.code(), n.subcode(), n.data.as_slice()), (1, 3, &[9][..]));
    // KEEPALIVE must be exactly 19.
    assert!(frame(&with_marker("0014 04 00"), 4096).is_err());
}

#[test]
fn encode_refuses_oversized_update() {
    let nlri: Vec<Nlri> = (0..2000u32)
        .map(|i| Nlri::new(Prefix::v4(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
        .collect();
    let msg = Message::Update(UpdateMsg {
        nlri,
        ..Default::default()
    });
    let mut out = vec![1, 2, 3];
    assert!(matches!(
        encode_message(&msg, &SessionContext::default(), &mut out),
        Err(Error::Encode { .. })
    ));
    assert_eq!(out, vec![1, 2, 3], "nothing appended on failure");
    let ctx = SessionContext {
        extended_message: true,
        ..Default::default()
    };
    assert!(encode_message(&msg, &ctx, &mut out).is_ok());
}

#[test]
fn negotiate_context() {
    let local = OpenMsg::new(
        65000,
        90,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::FourOctetAs(65000),
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::BOTH,
            }]),
            Capability::ExtendedMessage,
        ],
    );
    let remote = OpenMsg::new(
        65001,
        90,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(65001),
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::SEND,
            }]),
        ],
    );
    let ctx = SessionContext::negotiate(&local, &remote);
    assert!(ctx.four_octet_as);
    assert!(!ctx.extended_message);
    assert_eq!(ctx.families, [Family::IPV4_UNICAST].into());
    assert!(ctx.add_path_rx(Family::IPV4_UNICAST));
    assert!(!ctx.add_path_tx(Family::IPV4_UNICAST));
    let _unused: Ipv6Addr = Ipv6Addr::LOCALHOST;
}
