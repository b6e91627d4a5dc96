//! Pure block logic: tables and properties (no address handed out twice, free + allocated =
//! block size, release restores, freed addresses go to the back of the queue).

use std::collections::BTreeSet;
use std::net::IpAddr;

use brindle_crds::ipam::AllocationAttribute;
use brindle_ipam::block::*;
use ipnetwork::IpNetwork;
use proptest::prelude::*;

fn attr(h: &str) -> AllocationAttribute {
    AllocationAttribute {
        handle_id: Some(h.into()),
        ..Default::default()
    }
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

#[test]
fn arithmetic_table() {
    let b = net("198.18.0.64/26");
    assert_eq!(block_len(&b), 64);
    assert_eq!(ordinal_addr(&b, 0).to_string(), "198.18.0.64");
    assert_eq!(ordinal_addr(&b, 63).to_string(), "198.18.0.127");
    assert_eq!(addr_ordinal(&b, "198.18.0.70".parse().unwrap()), Some(6));
    assert_eq!(addr_ordinal(&b, "198.18.0.128".parse().unwrap()), None);
    let v6 = net("2001:db8::40/122");
    assert_eq!(block_len(&v6), 64);
    assert_eq!(ordinal_addr(&v6, 1).to_string(), "2001:db8::41");
    let pool = net("198.18.0.0/16");
    assert_eq!(block_count(&pool, 26), 1024);
    assert_eq!(nth_block(&pool, 26, 3).to_string(), "198.18.0.192/26");
    assert_eq!(nth_block(&pool, 26, 1023).to_string(), "198.18.255.192/26");
    assert_eq!(
        block_containing(&pool, 26, "198.18.7.200".parse().unwrap())
            .unwrap()
            .to_string(),
        "198.18.7.192/26"
    );
    assert_eq!(
        block_containing(&pool, 26, "198.19.0.1".parse().unwrap()),
        None
    );
    let big6 = net("2001:db8::/48");
    assert_eq!(block_count(&big6, 122), 1u128 << 74);
    assert_eq!(nth_block(&big6, 122, 2).to_string(), "2001:db8::80/122");
}

#[test]
fn node_order_is_stable_distinct_and_complete() {
    let pool = net("198.18.0.0/24");
    let a: Vec<_> = node_block_order(pool, 28, "node-a").collect();
    let a2: Vec<_> = node_block_order(pool, 28, "node-a").collect();
    let b: Vec<_> = node_block_order(pool, 28, "node-b").collect();
    assert_eq!(a, a2, "stable");
    assert_eq!(a.len(), 16);
    assert_eq!(
        a.iter().collect::<BTreeSet<_>>().len(),
        16,
        "every block once"
    );
    assert_ne!(a[0], b[0], "different nodes start at different blocks");
    // Huge IPv6 pools are iterated lazily.
    let first: Vec<_> = node_block_order(net("2001:db8::/32"), 122, "n")
        .take(3)
        .collect();
    assert_eq!(first.len(), 3);
}

#[test]
fn freed_addresses_are_reused_last() {
    let b = net("198.18.0.0/29");
    let mut s = new_block(b, Some("host:n".into()), false);
    let first = allocate(&mut s, &b, 1, &attr("h1"), |_| false);
    assert_eq!(first[0].to_string(), "198.18.0.0");
    release(&mut s, &b, &first);
    let next = allocate(&mut s, &b, 1, &attr("h2"), |_| false);
    assert_eq!(
        next[0].to_string(),
        "198.18.0.1",
        "the freed address goes to the back"
    );
}

#[test]
fn reserved_addresses_are_skipped_but_stay_free() {
    let b = net("198.18.0.0/29");
    let mut s = new_block(b, None, false);
    let reserved: IpAddr = "198.18.0.0".parse().unwrap();
    let got = allocate(&mut s, &b, 8, &attr("h"), |ip| ip == reserved);
    assert_eq!(got.len(), 7);
    assert!(!got.contains(&reserved));
    assert_eq!(s.unallocated, vec![0]);
}

#[test]
fn specific_and_handle_release() {
    let b = net("198.18.0.0/29");
    let mut s = new_block(b, None, false);
    let ip: IpAddr = "198.18.0.5".parse().unwrap();
    allocate_specific(&mut s, &b, ip, &attr("fixed")).unwrap();
    assert!(matches!(
        allocate_specific(&mut s, &b, ip, &attr("other")),
        Err(BlockError::InUse { .. })
    ));
    assert!(matches!(
        allocate_specific(&mut s, &b, "198.18.1.1".parse().unwrap(), &attr("x")),
        Err(BlockError::OutOfBlock(..))
    ));
    let more = allocate(&mut s, &b, 3, &attr("multi"), |_| false);
    assert!(!more.contains(&ip));
    assert_eq!(release_handle(&mut s, &b, "multi").len(), 3);
    assert_eq!(release_handle(&mut s, &b, "multi").len(), 0, "idempotent");
    assert_eq!(in_use(&s), 1);
    assert_eq!(s.attributes.len(), 1, "unused attributes are compacted");
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize, u8),
    Release(usize),
    ReleaseHandle(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..5, 0u8..4).prop_map(|(n, h)| Op::Alloc(n, h)),
        (0usize..64).prop_map(Op::Release),
        (0u8..4).prop_map(Op::ReleaseHandle),
    ]
}

proptest! {
    #[test]
    fn no_double_allocation_and_conservation(ops in prop::collection::vec(op(), 1..80), prefix in 26u8..31) {
        let b = IpNetwork::new("198.18.0.0".parse().unwrap(), prefix).unwrap();
        let size = block_len(&b);
        let mut s = new_block(b, Some("host:n".into()), false);
        let mut held: BTreeSet<IpAddr> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Alloc(n, h) => {
                    let got = allocate(&mut s, &b, n, &attr(&format!("h{h}")), |_| false);
                    prop_assert!(got.len() <= n);
                    prop_assert_eq!(got.len(), n.min(size - held.len()));
                    for ip in got {
                        prop_assert!(b.contains(ip));
                        prop_assert!(held.insert(ip), "{} handed out twice", ip);
                    }
                }
                Op::Release(i) => {
                    if let Some(ip) = held.iter().nth(i % held.len().max(1)).copied() {
                        let freed = release(&mut s, &b, &[ip, ip]);
                        prop_assert_eq!(freed.len(), 1);
                        held.remove(&ip);
                    }
                }
                Op::ReleaseHandle(h) => {
                    for ip in release_handle(&mut s, &b, &format!("h{h}")) {
                        prop_assert!(held.remove(&ip));
                    }
                }
            }
            prop_assert_eq!(in_use(&s) + s.unallocated.len(), size);
            prop_assert_eq!(in_use(&s), held.len());
            let listed: BTreeSet<IpAddr> = allocations(&s, &b).map(|(ip, _)| ip).collect();
            prop_assert_eq!(&listed, &held);
            let free: BTreeSet<u32> = s.unallocated.iter().copied().collect();
            prop_assert_eq!(free.len(), s.unallocated.len(), "free list has duplicates");
        }
        // The block's own invariants hold too (as the datastore would check them).
        let mut blk = brindle_crds::IPAMBlock::new("b", s.clone());
        blk.metadata.name = Some("b".into());
        prop_assert!(brindle_crds::Validate::validate(&blk).is_ok());
        // Releasing everything restores a full block.
        let all: Vec<IpAddr> = held.iter().copied().collect();
        release(&mut s, &b, &all);
        prop_assert_eq!(s.unallocated.len(), size);
        prop_assert!(s.attributes.is_empty());
    }
}
