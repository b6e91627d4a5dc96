//! Pure block logic: address arithmetic, carving pools into blocks, the per-node block order,
//! and allocation/release inside one block's `IPAMBlockSpec`. No I/O.
//!
//! A block of 2^k addresses is an `allocations` array (ordinal → index into `attributes`, or
//! free) plus an `unallocated` free list. Addresses are taken from the front of the free list
//! and returned to its back, so a released address is not handed out again at once.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use brindle_crds::ipam::{AllocationAttribute, IPAMBlockSpec};
use ipnetwork::IpNetwork;

/// Largest block: 2^12 addresses (a /20 or /116).
pub const MAX_BLOCK_BITS: u8 = 12;

fn bits(net: &IpNetwork) -> u8 {
    if net.is_ipv4() { 32 } else { 128 }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// A network with host bits cleared.
pub fn normalise(net: IpNetwork) -> IpNetwork {
    IpNetwork::new(net.network(), net.prefix()).unwrap_or(net)
}

/// Number of addresses in a block (at most 2^[`MAX_BLOCK_BITS`]).
pub fn block_len(block: &IpNetwork) -> usize {
    let host = bits(block) - block.prefix();
    1usize << host.min(MAX_BLOCK_BITS)
}

/// The address at `ordinal` within `block`.
pub fn ordinal_addr(block: &IpNetwork, ordinal: u32) -> IpAddr {
    from_u128(
        block.is_ipv4(),
        to_u128(block.network()) + u128::from(ordinal),
    )
}

/// The ordinal of `ip` within `block`, if inside.
pub fn addr_ordinal(block: &IpNetwork, ip: IpAddr) -> Option<u32> {
    if !block.contains(ip) {
        return None;
    }
    u32::try_from(to_u128(ip) - to_u128(block.network())).ok()
}

/// How many blocks of prefix `block_size` a pool holds (saturating for huge IPv6 pools).
pub fn block_count(pool: &IpNetwork, block_size: u8) -> u128 {
    let diff = block_size.saturating_sub(pool.prefix());
    if diff >= 127 {
        u128::MAX
    } else {
        1u128 << diff
    }
}

/// The `i`-th block of a pool.
pub fn nth_block(pool: &IpNetwork, block_size: u8, i: u128) -> IpNetwork {
    let host = u32::from(bits(pool) - block_size);
    let start = to_u128(pool.network()) + (i << host);
    normalise(IpNetwork::new(from_u128(pool.is_ipv4(), start), block_size).unwrap_or(*pool))
}

/// The block of a pool that contains `ip`.
pub fn block_containing(pool: &IpNetwork, block_size: u8, ip: IpAddr) -> Option<IpNetwork> {
    if !pool.contains(ip) {
        return None;
    }
    IpNetwork::new(ip, block_size).ok().map(normalise)
}

/// FNV-1a: a hash that stays the same across builds and platforms (unlike `DefaultHasher`).
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The order in which `node` tries a pool's blocks: starting at a point derived from the
/// node's name, wrapping around. Stable per node, different between nodes, lazy (IPv6 pools
/// have astronomically many blocks).
pub fn node_block_order(
    pool: IpNetwork,
    block_size: u8,
    node: &str,
) -> impl Iterator<Item = IpNetwork> {
    let count = block_count(&pool, block_size);
    let start = if count == 0 {
        0
    } else {
        u128::from(stable_hash(node)) % count
    };
    (0..count).map(move |i| nth_block(&pool, block_size, (start + i) % count))
}

/// A new, empty block.
pub fn new_block(
    cidr: IpNetwork,
    affinity: Option<String>,
    strict_affinity: bool,
) -> IPAMBlockSpec {
    let n = block_len(&cidr);
    IPAMBlockSpec {
        cidr: normalise(cidr).to_string(),
        affinity,
        strict_affinity,
        allocations: vec![None; n],
        unallocated: (0..n as u32).collect(),
        attributes: Vec::new(),
        deleted: false,
        sequence_number: 0,
        sequence_number_for_allocation: BTreeMap::new(),
    }
}

/// Why a specific address cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The address is outside the block.
    #[error("{0} is outside block {1}")]
    OutOfBlock(IpAddr, String),
    /// The address is held already.
    #[error("{ip} is already allocated (handle {handle:?})")]
    InUse {
        /// The address.
        ip: IpAddr,
        /// Its current holder.
        handle: Option<String>,
    },
}

fn attribute_index(spec: &mut IPAMBlockSpec, attr: &AllocationAttribute) -> u32 {
    if let Some(i) = spec.attributes.iter().position(|a| a == attr) {
        return i as u32;
    }
    spec.attributes.push(attr.clone());
    (spec.attributes.len() - 1) as u32
}

/// Takes up to `n` free addresses (fewer when the block runs out), skipping `reserved` ones.
pub fn allocate(
    spec: &mut IPAMBlockSpec,
    block: &IpNetwork,
    n: usize,
    attr: &AllocationAttribute,
    reserved: impl Fn(IpAddr) -> bool,
) -> Vec<IpAddr> {
    let mut taken = Vec::new();
    let mut keep = Vec::with_capacity(spec.unallocated.len());
    let free = std::mem::take(&mut spec.unallocated);
    let mut idx: Option<u32> = None;
    for o in free {
        let ip = ordinal_addr(block, o);
        if taken.len() < n && !reserved(ip) && spec.allocations.get(o as usize) == Some(&None) {
            let i = *idx.get_or_insert_with(|| attribute_index(spec, attr));
            spec.allocations[o as usize] = Some(i);
            spec.sequence_number_for_allocation
                .insert(o.to_string(), spec.sequence_number);
            taken.push(ip);
        } else {
            keep.push(o);
        }
    }
    spec.unallocated = keep;
    if !taken.is_empty() {
        spec.sequence_number += 1;
    }
    taken
}

/// Takes one specific address.
pub fn allocate_specific(
    spec: &mut IPAMBlockSpec,
    block: &IpNetwork,
    ip: IpAddr,
    attr: &AllocationAttribute,
) -> Result<(), BlockError> {
    let o = addr_ordinal(block, ip).ok_or_else(|| BlockError::OutOfBlock(ip, spec.cidr.clone()))?;
    if let Some(Some(i)) = spec.allocations.get(o as usize) {
        let handle = spec
            .attributes
            .get(*i as usize)
            .and_then(|a| a.handle_id.clone());
        return Err(BlockError::InUse { ip, handle });
    }
    let i = attribute_index(spec, attr);
    if let Some(slot) = spec.allocations.get_mut(o as usize) {
        *slot = Some(i);
    }
    spec.unallocated.retain(|&x| x != o);
    spec.sequence_number_for_allocation
        .insert(o.to_string(), spec.sequence_number);
    spec.sequence_number += 1;
    Ok(())
}

/// Frees the given addresses (those not allocated, or outside the block, are ignored), and
/// returns each freed address with the handle that held it.
pub fn release(
    spec: &mut IPAMBlockSpec,
    block: &IpNetwork,
    ips: &[IpAddr],
) -> Vec<(IpAddr, Option<String>)> {
    let mut out = Vec::new();
    for &ip in ips {
        let Some(o) = addr_ordinal(block, ip) else {
            continue;
        };
        let Some(slot) = spec.allocations.get_mut(o as usize) else {
            continue;
        };
        if let Some(i) = slot.take() {
            let handle = spec
                .attributes
                .get(i as usize)
                .and_then(|a| a.handle_id.clone());
            spec.unallocated.push(o);
            spec.sequence_number_for_allocation.remove(&o.to_string());
            out.push((ip, handle));
        }
    }
    compact_attributes(spec);
    out
}

/// One allocation as a reader saw it: the address, its handle and the sequence number it was
/// handed out under (None for allocations made before sequence numbers were recorded).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AllocationId {
    /// The address.
    pub ip: IpAddr,
    /// Its handle.
    pub handle: Option<String>,
    /// The block's sequence number when it was allocated.
    pub seq: Option<u64>,
}

/// The identity of the allocation at `ip`, if the address is allocated.
pub fn allocation_id(spec: &IPAMBlockSpec, block: &IpNetwork, ip: IpAddr) -> Option<AllocationId> {
    let o = addr_ordinal(block, ip)?;
    let i = (*spec.allocations.get(o as usize)?)?;
    Some(AllocationId {
        ip,
        handle: spec.attributes.get(i as usize)?.handle_id.clone(),
        seq: spec
            .sequence_number_for_allocation
            .get(&o.to_string())
            .copied(),
    })
}

/// Frees each given allocation only if the address still holds that same allocation (same
/// handle and sequence number): an address released and handed to a new workload since the
/// caller looked is left alone. Returns what was freed.
pub fn release_exact(
    spec: &mut IPAMBlockSpec,
    block: &IpNetwork,
    ids: &[AllocationId],
) -> Vec<(IpAddr, Option<String>)> {
    let still: Vec<IpAddr> = ids
        .iter()
        .filter(|id| allocation_id(spec, block, id.ip).as_ref() == Some(*id))
        .map(|id| id.ip)
        .collect();
    release(spec, block, &still)
}

/// Frees every address held by `handle`; returns them.
pub fn release_handle(spec: &mut IPAMBlockSpec, block: &IpNetwork, handle: &str) -> Vec<IpAddr> {
    let ips: Vec<IpAddr> = allocations(spec, block)
        .filter(|(_, a)| a.handle_id.as_deref() == Some(handle))
        .map(|(ip, _)| ip)
        .collect();
    release(spec, block, &ips)
        .into_iter()
        .map(|(ip, _)| ip)
        .collect()
}

/// Drops attributes no allocation points at, renumbering the rest.
pub fn compact_attributes(spec: &mut IPAMBlockSpec) {
    let mut used = vec![false; spec.attributes.len()];
    for i in spec.allocations.iter().flatten() {
        if let Some(u) = used.get_mut(*i as usize) {
            *u = true;
        }
    }
    if used.iter().all(|u| *u) {
        return;
    }
    let mut remap = BTreeMap::new();
    let old = std::mem::take(&mut spec.attributes);
    for (i, (a, u)) in old.into_iter().zip(used).enumerate() {
        if u {
            remap.insert(i as u32, spec.attributes.len() as u32);
            spec.attributes.push(a);
        }
    }
    for slot in spec.allocations.iter_mut().flatten() {
        *slot = remap.get(slot).copied().unwrap_or(*slot);
    }
}

/// Every allocated address with its attributes.
pub fn allocations<'a>(
    spec: &'a IPAMBlockSpec,
    block: &'a IpNetwork,
) -> impl Iterator<Item = (IpAddr, &'a AllocationAttribute)> + 'a {
    spec.allocations
        .iter()
        .enumerate()
        .filter_map(move |(o, a)| {
            let attr = spec.attributes.get((*a)? as usize)?;
            Some((ordinal_addr(block, o as u32), attr))
        })
}

/// Number of allocated addresses.
pub fn in_use(spec: &IPAMBlockSpec) -> usize {
    spec.allocations.iter().filter(|a| a.is_some()).count()
}
