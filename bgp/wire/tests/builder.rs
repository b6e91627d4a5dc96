//! Update packing: fill factor, families, ADD-PATH and refusals.

use std::net::{Ipv4Addr, Ipv6Addr};

use brindle_bgp_wire::*;

fn v4s(n: u32) -> Vec<Nlri> {
    (0..n)
        .map(|i| Nlri::new(Prefix::v4(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
        .collect()
}

fn base_attrs() -> Vec<PathAttribute> {
    vec![
        PathAttribute::Origin(Origin::Igp),
        PathAttribute::AsPath(AsPath::from_sequence(vec![65000, 65001])),
        PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
    ]
}

fn decode_all(msgs: &[Vec<u8>], ctx: &SessionContext) -> Vec<UpdateMsg> {
    msgs.iter()
        .map(|m| match decode_message(m, ctx).unwrap().msg {
            Message::Update(u) => u,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn about_a_thousand_slash24_per_4k_update() {
    let ctx = SessionContext::four_octet();
    let msgs = pack_updates(&base_attrs(), &v4s(10_000), &ctx, 4096).unwrap();
    assert_eq!(msgs.len(), 10);
    let ups = decode_all(&msgs, &ctx);
    assert!(ups[0].nlri.len() >= 1000, "{}", ups[0].nlri.len());
    assert!(msgs[..9].iter().all(|m| m.len() > 4090 && m.len() <= 4096));
    assert_eq!(ups.iter().map(|u| u.nlri.len()).sum::<usize>(), 10_000);
    // Attributes sorted by type code, identical in every message.
    assert!(ups.iter().all(|u| u.attributes == base_attrs()));
}

#[test]
fn extended_messages_pack_more() {
    let ctx = SessionContext {
        extended_message: true,
        ..SessionContext::four_octet()
    };
    let msgs = pack_updates(&base_attrs(), &v4s(20_000), &ctx, ctx.max_message_len()).unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].len() <= 65535);
}

#[test]
fn ipv6_goes_into_mp_reach_with_extended_length() {
    let ctx = SessionContext::four_octet();
    let nh = NextHop::V6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: Some("fe80::1".parse().unwrap()),
    };
    let mut attrs = base_attrs();
    attrs.retain(|a| !matches!(a, PathAttribute::NextHop(_)));
    attrs.push(PathAttribute::MpReach(MpReach {
        family: Family::IPV6_UNICAST,
        next_hop: nh,
        nlri: vec![],
    }));
    attrs.push(PathAttribute::LargeCommunities(vec![LargeCommunity {
        global_admin: 1,
        local_data1: 2,
        local_data2: 3,
    }]));
    let nlri: Vec<Nlri> = (0..2000u128)
        .map(|i| {
            Nlri::new(Prefix::v6(Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 64)), 64).unwrap())
        })
        .collect();
    let msgs = pack_updates(&attrs, &nlri, &ctx, 4096).unwrap();
    let ups = decode_all(&msgs, &ctx);
    let got: Vec<Nlri> = ups
        .iter()
        .flat_map(|u| u.mp_reach().unwrap().nlri.clone())
        .collect();
    assert_eq!(got, nlri);
    // MP_REACH comes before LARGE_COMMUNITIES (type order) and uses Extended Length.
    assert!(matches!(ups[0].attributes[2], PathAttribute::MpReach(_)));
    assert!(ups.iter().all(|u| u.nlri.is_empty()));
}

#[test]
fn ipv4_with_ipv6_next_hop_rfc8950() {
    let ctx = SessionContext::four_octet();
    let mut attrs = base_attrs();
    attrs.retain(|a| !matches!(a, PathAttribute::NextHop(_)));
    attrs.push(PathAttribute::MpReach(MpReach {
        family: Family::IPV4_UNICAST,
        next_hop: NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: None,
        },
        nlri: vec![],
    }));
    let msgs = pack_updates(&attrs, &v4s(5), &ctx, 4096).unwrap();
    let u = &decode_all(&msgs, &ctx)[0];
    assert!(u.nlri.is_empty());
    assert_eq!(u.mp_reach().unwrap().nlri, v4s(5));
}

#[test]
fn withdrawals_classic_and_mp() {
    let ctx = SessionContext::four_octet();
    let msgs = pack_withdrawals(Family::IPV4_UNICAST, &v4s(3000), &ctx, 4096).unwrap();
    assert_eq!(msgs.len(), 3);
    let ups = decode_all(&msgs, &ctx);
    assert!(
        ups.iter()
            .all(|u| u.attributes.is_empty() && u.nlri.is_empty())
    );
    assert_eq!(ups.iter().map(|u| u.withdrawn.len()).sum::<usize>(), 3000);
    let v6 = vec![Nlri::new(
        Prefix::v6("2001:db8::".parse().unwrap(), 32).unwrap(),
    )];
    let msgs = pack_withdrawals(Family::IPV6_UNICAST, &v6, &ctx, 4096).unwrap();
    let u = &decode_all(&msgs, &ctx)[0];
    assert_eq!(u.mp_unreach().unwrap().withdrawn, v6);
    assert_eq!(u.end_of_rib(), None);
    assert!(
        pack_withdrawals(Family::IPV6_UNICAST, &[], &ctx, 4096)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn add_path_ids_are_written() {
    let mut ctx = SessionContext::four_octet();
    ctx.add_path_tx.insert(Family::IPV4_UNICAST);
    ctx.add_path_rx.insert(Family::IPV4_UNICAST);
    let nlri: Vec<Nlri> = v4s(2000)
        .into_iter()
        .enumerate()
        .map(|(i, n)| Nlri::with_path_id(n.prefix, i as u32 + 1))
        .collect();
    let msgs = pack_updates(&base_attrs(), &nlri, &ctx, 4096).unwrap();
    let ups = decode_all(&msgs, &ctx);
    assert!(ups[0].nlri.len() > 450 && ups[0].nlri.len() < 520);
    let got: Vec<Nlri> = ups.into_iter().flat_map(|u| u.nlri).collect();
    assert_eq!(got, nlri);
}

#[test]
fn refusals() {
    let ctx = SessionContext::four_octet();
    let v6 = vec![Nlri::new(Prefix::v6(Ipv6Addr::LOCALHOST, 128).unwrap())];
    // IPv6 prefixes without an MP_REACH template.
    assert!(matches!(
        pack_updates(&base_attrs(), &v6, &ctx, 4096),
        Err(Error::Encode { .. })
    ));
    // Attributes leaving no room.
    let huge = vec![PathAttribute::Communities(
        (0..1100).map(|i| Community::new(1, i)).collect(),
    )];
    assert!(matches!(
        pack_updates(&huge, &v4s(1), &ctx, 4096),
        Err(Error::Encode { .. })
    ));
}
