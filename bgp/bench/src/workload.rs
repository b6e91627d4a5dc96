//! The routes of the benchmark workloads, generated deterministically so that injectors, the
//! sink and every run agree without sharing files.
//!
//! * [`uniform`]: N prefixes of one length spaced evenly in a space (the bgperf shape).
//! * [`internet`]: N distinct prefixes from /8 to /24 in 240.0.0.0/4 with the length mix of a
//!   full Internet table (most /24s), and [`internet_attrs`]: about S distinct attribute sets
//!   (AS paths of 1 to 7 ASes, communities, MEDs, two origins) spread over them.

use std::net::Ipv4Addr;

use anyhow::{Context, bail};
use brindle_bgp_wire::{AsPath, Community, Nlri, Origin, PathAttribute, Prefix};

/// `count` prefixes of length `len`: `base + i * 2^(32 - len)` inside `space`.
pub fn uniform(space: (Ipv4Addr, u8), len: u8, count: u32) -> anyhow::Result<Vec<Nlri>> {
    let (base, space_len) = space;
    if len > 32 || len < space_len {
        bail!("prefix length {len} does not fit in /{space_len}");
    }
    let capacity = 1u64 << (len - space_len);
    if u64::from(count) > capacity {
        bail!("the space holds only {capacity} /{len} prefixes, {count} asked");
    }
    let base = u32::from(base) & (u32::MAX.checked_shl(32 - u32::from(space_len)).unwrap_or(0));
    let step = 1u64 << (32 - len);
    (0..u64::from(count))
        .map(|i| {
            let a = u32::try_from(u64::from(base) + i * step).context("prefix out of range")?;
            Prefix::v4(Ipv4Addr::from(a), len)
                .map(Nlri::new)
                .context("prefix")
        })
        .collect()
}

/// Share of a full table per prefix length (per mille), /8 to /23; /24 takes the rest.
/// Roughly the IPv4 table of the mid 2020s, capped so each length fits in 240.0.0.0/4.
const LENGTH_MIX: [(u8, u32); 16] = [
    (8, 0),
    (9, 0),
    (10, 0),
    (11, 0),
    (12, 0),
    (13, 1),
    (14, 1),
    (15, 2),
    (16, 8),
    (17, 6),
    (18, 10),
    (19, 20),
    (20, 30),
    (21, 45),
    (22, 110),
    (23, 100),
];

/// A 64-bit mix (splitmix64 finalizer): deterministic pseudo-random numbers.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `count` distinct prefixes with an Internet-like length mix inside 240.0.0.0/4 (overlaps,
/// as in a real table, are allowed). Each length's prefixes are a scattered permutation of
/// that length's slots, so they are spread over the space. At most 1,048,576.
pub fn internet(count: u32) -> anyhow::Result<Vec<Nlri>> {
    if count > 1 << 20 {
        bail!("at most 1048576 prefixes");
    }
    let base = u32::from(Ipv4Addr::new(240, 0, 0, 0));
    let mut per_len: Vec<(u8, u32)> = Vec::new();
    let mut used = 0u32;
    for (len, permille) in LENGTH_MIX {
        let slots = 1u32 << (len - 4);
        let n = (u64::from(count) * u64::from(permille) / 1000) as u32;
        let n = n.min(slots / 2).min(count - used);
        per_len.push((len, n));
        used += n;
    }
    per_len.push((24, count - used));
    let mut out = Vec::with_capacity(count as usize);
    for (len, n) in per_len {
        let slots = 1u64 << (len - 4);
        // An odd multiplier permutes the slots of a power-of-two space.
        let mult = ((mix(u64::from(len)) | 1) % slots.max(2)) | 1;
        for i in 0..u64::from(n) {
            let slot = (i.wrapping_mul(mult)) % slots;
            let a = base + (slot << (32 - u32::from(len))) as u32;
            out.push(Nlri::new(
                Prefix::v4(Ipv4Addr::from(a), len).context("prefix")?,
            ));
        }
    }
    Ok(out)
}

/// Which of `sets` attribute sets prefix number `i` uses.
pub fn internet_set(i: u32, sets: u32) -> u32 {
    (mix(u64::from(i)) % u64::from(sets.max(1))) as u32
}

/// Attribute set number `k`: distinct for every `k` (the last AS of the path encodes it),
/// with 1 to 7 ASes, 0 to 3 communities, a MED on two thirds and an INCOMPLETE origin on
/// one in eight.
pub fn internet_attrs(k: u32, local_as: u32, next_hop: Ipv4Addr) -> Vec<PathAttribute> {
    let h = mix(u64::from(k) ^ 0x5151);
    let hops = 1 + (h % 6) as usize;
    let mut path = vec![local_as];
    for x in 0..hops.saturating_sub(1) {
        // 64512..64911: never the ASes of the benchmark routers (65001-65110).
        path.push(64512 + ((h >> (8 + 4 * x)) % 400) as u32);
    }
    path.push(4_200_000_000 + k);
    let mut attrs = vec![
        PathAttribute::Origin(if h.is_multiple_of(8) {
            Origin::Incomplete
        } else {
            Origin::Igp
        }),
        PathAttribute::AsPath(AsPath::from_sequence(path)),
        PathAttribute::NextHop(next_hop),
    ];
    if !h.is_multiple_of(3) {
        attrs.push(PathAttribute::MultiExitDisc(((h >> 20) % 500) as u32));
    }
    let nc = ((h >> 32) % 4) as u32;
    if nc > 0 {
        attrs.push(PathAttribute::Communities(
            (0..nc)
                .map(|c| Community((local_as & 0xffff) << 16 | ((h >> (36 + c)) as u32 % 300)))
                .collect(),
        ));
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn internet_prefixes_are_distinct_and_mostly_24s() {
        let v = internet(200_000).expect("table");
        assert_eq!(v.len(), 200_000);
        let set: HashSet<_> = v.iter().map(|n| n.prefix).collect();
        assert_eq!(set.len(), v.len());
        let l24 = v.iter().filter(|n| n.prefix.len() == 24).count();
        assert!(l24 > 100_000 && l24 < 150_000, "{l24}");
        assert!(v.iter().any(|n| n.prefix.len() == 16));
    }

    #[test]
    fn attribute_sets_differ() {
        let nh = Ipv4Addr::new(198, 18, 0, 1);
        let a: HashSet<_> = (0..1000)
            .map(|k| format!("{:?}", internet_attrs(k, 65001, nh)))
            .collect();
        assert_eq!(a.len(), 1000);
    }
}
