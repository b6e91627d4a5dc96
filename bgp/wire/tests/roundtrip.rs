//! Property tests: `decode(encode(msg)) == msg` for arbitrary valid messages in arbitrary
//! session contexts, and "decoding arbitrary bytes never panics".

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use brindle_bgp_wire::*;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

fn ctx_strategy() -> impl Strategy<Value = SessionContext> {
    let fams = || {
        btree_set(
            prop_oneof![Just(Family::IPV4_UNICAST), Just(Family::IPV6_UNICAST)],
            0..=2,
        )
    };
    (any::<bool>(), any::<bool>(), fams()).prop_map(|(four, ext, ap)| SessionContext {
        four_octet_as: four,
        extended_message: ext,
        families: [Family::IPV4_UNICAST, Family::IPV6_UNICAST].into(),
        // Encode and decode with the same context, so rx and tx agree.
        add_path_rx: ap.clone(),
        add_path_tx: ap,
    })
}

fn prefix_v4() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Prefix::v4(Ipv4Addr::from(a), l).unwrap())
}

fn prefix_v6() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Prefix::v6(Ipv6Addr::from(a), l).unwrap())
}

fn nlri_list(
    p: impl Strategy<Value = Prefix>,
    add_path: bool,
    max: usize,
) -> impl Strategy<Value = Vec<Nlri>> {
    vec((p, any::<u32>()), 0..max).prop_map(move |v| {
        v.into_iter()
            .map(|(prefix, id)| Nlri {
                path_id: add_path.then_some(id),
                prefix,
            })
            .collect()
    })
}

fn asn(four: bool) -> BoxedStrategy<u32> {
    if four {
        any::<u32>().boxed()
    } else {
        (0u32..=65535).boxed()
    }
}

fn as_path(four: bool, confed: bool) -> impl Strategy<Value = AsPath> {
    let kind = if confed {
        prop_oneof![
            Just(SegmentType::Set),
            Just(SegmentType::Sequence),
            Just(SegmentType::ConfedSequence),
            Just(SegmentType::ConfedSet)
        ]
        .boxed()
    } else {
        prop_oneof![Just(SegmentType::Set), Just(SegmentType::Sequence)].boxed()
    };
    vec((kind, vec(asn(four), 1..12)), 0..4).prop_map(|segs| AsPath {
        segments: segs
            .into_iter()
            .map(|(kind, asns)| AsSegment { kind, asns })
            .collect(),
    })
}

fn next_hop(family: Family) -> BoxedStrategy<NextHop> {
    let v6 = (any::<u128>(), proptest::option::of(any::<u128>())).prop_map(|(g, l)| NextHop::V6 {
        global: Ipv6Addr::from(g),
        link_local: l.map(Ipv6Addr::from),
    });
    if family == Family::IPV4_UNICAST {
        prop_oneof![
            any::<u32>().prop_map(|a| NextHop::V4(Ipv4Addr::from(a))),
            v6
        ]
        .boxed()
    } else {
        v6.boxed()
    }
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::IPV4_UNICAST), Just(Family::IPV6_UNICAST)]
}

fn prefixes_of(f: Family, ap: bool, max: usize) -> BoxedStrategy<Vec<Nlri>> {
    if f.afi == Afi::IPV4 {
        nlri_list(prefix_v4(), ap, max).boxed()
    } else {
        nlri_list(prefix_v6(), ap, max).boxed()
    }
}

fn attribute(ctx: &SessionContext) -> BoxedStrategy<PathAttribute> {
    let four = ctx.four_octet_as;
    let aps = ctx.add_path_tx.clone();
    let aps2 = ctx.add_path_tx.clone();
    let agg = |asn: BoxedStrategy<u32>| {
        (asn, any::<u32>()).prop_map(|(asn, a)| Aggregator {
            asn,
            address: Ipv4Addr::from(a),
        })
    };
    let mut options: Vec<BoxedStrategy<PathAttribute>> = vec![
        prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ]
        .prop_map(PathAttribute::Origin)
        .boxed(),
        as_path(four, true).prop_map(PathAttribute::AsPath).boxed(),
        any::<u32>()
            .prop_map(|a| PathAttribute::NextHop(a.into()))
            .boxed(),
        any::<u32>().prop_map(PathAttribute::MultiExitDisc).boxed(),
        any::<u32>().prop_map(PathAttribute::LocalPref).boxed(),
        Just(PathAttribute::AtomicAggregate).boxed(),
        agg(asn(four)).prop_map(PathAttribute::Aggregator).boxed(),
        vec(any::<u32>().prop_map(Community), 1..20)
            .prop_map(PathAttribute::Communities)
            .boxed(),
        any::<u32>()
            .prop_map(|a| PathAttribute::OriginatorId(a.into()))
            .boxed(),
        vec(any::<u32>().prop_map(Ipv4Addr::from), 1..8)
            .prop_map(PathAttribute::ClusterList)
            .boxed(),
        vec(any::<[u8; 8]>().prop_map(ExtendedCommunity), 0..10)
            .prop_map(PathAttribute::ExtendedCommunities)
            .boxed(),
        vec(
            any::<(u32, u32, u32)>().prop_map(|(a, b, c)| LargeCommunity {
                global_admin: a,
                local_data1: b,
                local_data2: c,
            }),
            1..8,
        )
        .prop_map(PathAttribute::LargeCommunities)
        .boxed(),
        family()
            .prop_flat_map(move |f| (Just(f), next_hop(f), prefixes_of(f, aps.contains(&f), 20)))
            .prop_map(|(family, next_hop, nlri)| {
                PathAttribute::MpReach(MpReach {
                    family,
                    next_hop,
                    nlri,
                })
            })
            .boxed(),
        family()
            .prop_flat_map(move |f| (Just(f), prefixes_of(f, aps2.contains(&f), 20)))
            .prop_map(|(family, withdrawn)| {
                PathAttribute::MpUnreach(MpUnreach { family, withdrawn })
            })
            .boxed(),
        (
            prop_oneof![Just(0x80u8), Just(0xc0), Just(0xe0), Just(0xa0)],
            100u8..=254,
            vec(any::<u8>(), 0..300),
        )
            .prop_map(|(flags, type_code, value)| {
                PathAttribute::Unknown(RawAttribute {
                    flags,
                    type_code,
                    value,
                })
            })
            .boxed(),
    ];
    if !four {
        options.push(
            as_path(true, false)
                .prop_map(PathAttribute::As4Path)
                .boxed(),
        );
        options.push(
            agg(any::<u32>().boxed())
                .prop_map(PathAttribute::As4Aggregator)
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

fn update_in(ctx: SessionContext) -> impl Strategy<Value = (SessionContext, UpdateMsg)> {
    let ap = ctx.add_path_tx.contains(&Family::IPV4_UNICAST);
    (
        nlri_list(prefix_v4(), ap, 30),
        vec(attribute(&ctx), 0..10),
        nlri_list(prefix_v4(), ap, 30),
        Just(ctx),
    )
        .prop_map(|(withdrawn, attrs, nlri, ctx)| {
            // One attribute per type: duplicates are discarded (or fatal) by design.
            let mut seen = BTreeSet::new();
            let attributes = attrs
                .into_iter()
                .filter(|a| seen.insert(a.type_code()))
                .collect();
            (
                ctx,
                UpdateMsg {
                    withdrawn,
                    attributes,
                    nlri,
                },
            )
        })
}

fn capability() -> impl Strategy<Value = Capability> {
    let fam = (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family::new(Afi(a), Safi(s)));
    prop_oneof![
        fam.clone().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        any::<u32>().prop_map(Capability::FourOctetAs),
        vec(any::<(u16, u16, u16)>(), 0..4).prop_map(|v| Capability::ExtendedNextHop(
            v.into_iter()
                .map(|(a, s, n)| ExtendedNextHop {
                    nlri_afi: Afi(a),
                    nlri_safi: s,
                    next_hop_afi: Afi(n),
                })
                .collect()
        )),
        (0u8..16, 0u16..4096, vec((fam.clone(), any::<u8>()), 0..4)).prop_map(|(f, t, v)| {
            Capability::GracefulRestart(GracefulRestart {
                flags: f,
                restart_time: t,
                families: v
                    .into_iter()
                    .map(|(family, flags)| GrFamily { family, flags })
                    .collect(),
            })
        }),
        vec((fam.clone(), any::<u8>()), 0..4).prop_map(|v| Capability::AddPath(
            v.into_iter()
                .map(|(family, m)| AddPathFamily {
                    family,
                    mode: AddPathMode(m),
                })
                .collect()
        )),
        vec((fam, any::<u8>(), 0u32..(1 << 24)), 0..4).prop_map(|v| {
            Capability::LongLivedGracefulRestart(
                v.into_iter()
                    .map(|(family, flags, stale_time)| LlgrFamily {
                        family,
                        flags,
                        stale_time,
                    })
                    .collect(),
            )
        }),
        ("[a-z0-9.-]{0,30}", "[a-zé0-9.-]{0,30}")
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (
            (7u8..=63).prop_filter("known", |c| *c != 73
                && *c != 69
                && *c != 70
                && *c != 71
                && *c != 64
                && *c != 65),
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = OpenMsg> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        vec(capability(), 0..30),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| OpenMsg {
            version: 4,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
}

fn message() -> impl Strategy<Value = (SessionContext, Message)> {
    prop_oneof![
        open().prop_map(|o| (SessionContext::default(), Message::Open(o))),
        ctx_strategy()
            .prop_flat_map(update_in)
            .prop_map(|(c, u)| (c, Message::Update(u))),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..100)).prop_map(|(c, s, d)| (
            SessionContext::default(),
            Message::Notification(NotificationMsg::from_codes(c, s, d))
        )),
        Just((SessionContext::default(), Message::Keepalive)),
        (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(a, st, s)| (
            SessionContext::default(),
            Message::RouteRefresh(RouteRefreshMsg {
                family: Family::new(Afi(a), Safi(s)),
                subtype: st.into(),
            })
        )),
    ]
}

proptest! {
    #[test]
    fn message_round_trip((ctx, msg) in message()) {
        let bytes = match msg.encode(&ctx) {
            Ok(b) => b,
            // Too large for the session: nothing to check.
            Err(Error::Encode { .. }) => return Ok(()),
            Err(e) => panic!("unexpected {e:?}"),
        };
        let header = frame(&bytes, ctx.max_message_len()).unwrap().unwrap();
        prop_assert_eq!(header.length, bytes.len());
        let d = decode_message(&bytes, &ctx).unwrap();
        prop_assert_eq!(&d.msg, &msg);
        // Only "missing well-known attribute" findings are possible for generated UPDATEs.
        for f in &d.findings {
            prop_assert!(matches!(f, Error::TreatAsWithdraw { reason } if reason.contains("missing")), "{f:?}");
        }
    }

    #[test]
    fn update_body_round_trip((ctx, u) in ctx_strategy().prop_flat_map(update_in)) {
        let mut body = Vec::new();
        u.encode_body(&ctx, &mut body).unwrap();
        let d = decode_update(&body, &ctx).unwrap();
        prop_assert_eq!(d.msg, u);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..700), ctx in ctx_strategy()) {
        let _ = frame(&bytes, 4096);
        let _ = decode_update(&bytes, &ctx);
        let _ = decode_open(&bytes);
        let _ = NotificationMsg::decode(&bytes);
        // Wrap in a valid header of each type so the body decoders are reached.
        for t in 1u8..=5 {
            let mut m = vec![0xff; 16];
            m.extend(((bytes.len() + 19) as u16).to_be_bytes());
            m.push(t);
            m.extend(&bytes);
            let _ = decode_message(&m, &ctx);
        }
    }

    #[test]
    fn mutated_updates_never_panic(
        (ctx, u) in ctx_strategy().prop_flat_map(update_in),
        flips in vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut body = Vec::new();
        u.encode_body(&ctx, &mut body).unwrap();
        for (i, b) in flips {
            if !body.is_empty() {
                let n = body.len();
                body[i % n] = b;
            }
        }
        let _ = decode_update(&body, &ctx);
        let cut = if body.is_empty() { 0 } else { cut % body.len() };
        let _ = decode_update(&body[..cut], &ctx);
        let mut other = ctx.clone();
        other.four_octet_as = !ctx.four_octet_as;
        other.add_path_rx = if ctx.add_path_rx.is_empty() {
            [Family::IPV4_UNICAST, Family::IPV6_UNICAST].into()
        } else {
            BTreeSet::new()
        };
        let _ = decode_update(&body, &other);
    }

    #[test]
    fn mutated_opens_never_panic(o in open(), flips in vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut body = Vec::new();
        if o.encode_body(&mut body).is_ok() {
            for (i, b) in flips {
                let n = body.len();
                body[i % n] = b;
            }
            let _ = decode_open(&body);
        }
    }

    #[test]
    fn packed_updates_decode_to_the_same_prefixes(
        ctx in ctx_strategy(),
        v4 in vec(prefix_v4(), 0..3000),
        v6 in vec(prefix_v6(), 0..500),
    ) {
        let ap4 = ctx.add_path_tx(Family::IPV4_UNICAST);
        let ap6 = ctx.add_path_tx(Family::IPV6_UNICAST);
        let n4: Vec<Nlri> = v4.iter().enumerate().map(|(i, p)| Nlri { path_id: ap4.then_some(i as u32), prefix: *p }).collect();
        let n6: Vec<Nlri> = v6.iter().enumerate().map(|(i, p)| Nlri { path_id: ap6.then_some(i as u32), prefix: *p }).collect();
        let attrs4 = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::from_sequence(vec![65000])),
            PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)),
            PathAttribute::Communities(vec![Community::NO_EXPORT]),
        ];
        let attrs6 = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::from_sequence(vec![65000])),
            PathAttribute::MpReach(MpReach { family: Family::IPV6_UNICAST, next_hop: NextHop::V6 { global: Ipv6Addr::LOCALHOST, link_local: None }, nlri: vec![] }),
            PathAttribute::LocalPref(100),
        ];
        let max = ctx.max_message_len();
        let mut got4 = Vec::new();
        let mut got6 = Vec::new();
        let mut w4 = Vec::new();
        let mut w6 = Vec::new();
        let msgs = pack_updates(&attrs4, &n4, &ctx, max).unwrap().into_iter()
            .chain(pack_updates(&attrs6, &n6, &ctx, max).unwrap())
            .chain(pack_withdrawals(Family::IPV4_UNICAST, &n4, &ctx, max).unwrap())
            .chain(pack_withdrawals(Family::IPV6_UNICAST, &n6, &ctx, max).unwrap());
        for m in msgs {
            prop_assert!(m.len() <= max);
            let d = decode_message(&m, &ctx).unwrap();
            prop_assert!(d.findings.is_empty(), "{:?}", d.findings);
            let Message::Update(u) = d.msg else { panic!("not an update") };
            for (f, n) in u.announced() {
                if f == Family::IPV4_UNICAST { got4.push(*n) } else { got6.push(*n) }
            }
            for (f, n) in u.withdrawals() {
                if f == Family::IPV4_UNICAST { w4.push(*n) } else { w6.push(*n) }
            }
        }
        prop_assert_eq!(&got4, &n4);
        prop_assert_eq!(&got6, &n6);
        prop_assert_eq!(&w4, &n4);
        prop_assert_eq!(&w6, &n6);
    }
}
