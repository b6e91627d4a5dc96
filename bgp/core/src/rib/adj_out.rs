//! The Adj-RIBs-Out of every neighbor, in one prefix-keyed table: what we last advertised to
//! each neighbor, per prefix, as the exact wire attributes. Advertisement computes the desired
//! state and sends only the difference.
//!
//! Each neighbor has a slot (a bit). A prefix's entry lists the distinct attribute lists
//! advertised for it, each with the set of neighbors it went to, so a route reflected to a
//! hundred clients costs one entry with one bit set per client, not a hundred table entries.
//! Attribute lists are interned once for all neighbors (`Arc<Vec<PathAttribute>>`), so a table
//! of a million routes with a few distinct attribute sets stores a few lists.
//!
//! Pure.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use brindle_bgp_wire::{Family, PathAttribute, Prefix};

use crate::route::{Interner, family_of};

/// Wire attributes shared by every prefix advertised with them.
pub type SharedAttrs = Arc<Vec<PathAttribute>>;

/// A set of neighbor slots: inline up to 64, on the heap beyond.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slots {
    Small(u64),
    Large(Box<[u64]>),
}

impl Slots {
    fn one(s: usize) -> Slots {
        let mut b = Slots::Small(0);
        b.set(s);
        b
    }

    fn has(&self, s: usize) -> bool {
        match self {
            Slots::Small(w) => s < 64 && w & (1 << s) != 0,
            Slots::Large(ws) => ws.get(s / 64).is_some_and(|w| w & (1 << (s % 64)) != 0),
        }
    }

    fn set(&mut self, s: usize) {
        if s >= 64
            && let Slots::Small(w) = *self
        {
            let mut ws = vec![0u64; s / 64 + 1];
            ws[0] = w;
            *self = Slots::Large(ws.into_boxed_slice());
        }
        match self {
            Slots::Small(w) => *w |= 1 << s,
            Slots::Large(ws) => {
                if ws.len() <= s / 64 {
                    let mut v = ws.to_vec();
                    v.resize(s / 64 + 1, 0);
                    *ws = v.into_boxed_slice();
                }
                ws[s / 64] |= 1 << (s % 64);
            }
        }
    }

    fn unset(&mut self, s: usize) {
        match self {
            Slots::Small(w) => {
                if s < 64 {
                    *w &= !(1 << s);
                }
            }
            Slots::Large(ws) => {
                if let Some(w) = ws.get_mut(s / 64) {
                    *w &= !(1 << (s % 64));
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Slots::Small(w) => *w == 0,
            Slots::Large(ws) => ws.iter().all(|w| *w == 0),
        }
    }
}

/// The attribute lists advertised for one prefix, with the neighbors each went to. Almost
/// always one list.
#[derive(Debug, Clone)]
enum Holders {
    One(SharedAttrs, Slots),
    Many(Vec<(SharedAttrs, Slots)>),
}

impl Holders {
    fn get(&self, s: usize) -> Option<&SharedAttrs> {
        match self {
            Holders::One(a, b) => b.has(s).then_some(a),
            Holders::Many(v) => v.iter().find(|(_, b)| b.has(s)).map(|(a, _)| a),
        }
    }

    /// Take `s` out; true when it was there.
    fn unset(&mut self, s: usize) -> bool {
        match self {
            Holders::One(_, b) => {
                let had = b.has(s);
                b.unset(s);
                had
            }
            Holders::Many(v) => {
                let mut had = false;
                for (_, b) in v.iter_mut() {
                    had |= b.has(s);
                    b.unset(s);
                }
                v.retain(|(_, b)| !b.is_empty());
                had
            }
        }
    }

    /// Put `s` with `attrs` (after [`Self::unset`]).
    fn set(&mut self, s: usize, attrs: &SharedAttrs) {
        let same = |a: &SharedAttrs| Arc::ptr_eq(a, attrs) || **a == **attrs;
        match self {
            Holders::One(a, b) if b.is_empty() => {
                *a = attrs.clone();
                *b = Slots::one(s);
            }
            Holders::One(a, b) if same(a) => b.set(s),
            Holders::One(a, b) => {
                let first = (a.clone(), std::mem::replace(b, Slots::Small(0)));
                *self = Holders::Many(vec![first, (attrs.clone(), Slots::one(s))]);
            }
            Holders::Many(v) => match v.iter_mut().find(|(a, _)| same(a)) {
                Some((_, b)) => b.set(s),
                None => v.push((attrs.clone(), Slots::one(s))),
            },
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Holders::One(_, b) => b.is_empty(),
            Holders::Many(v) => v.is_empty(),
        }
    }
}

/// What every neighbor was sent.
#[derive(Debug, Clone, Default)]
pub struct AdjOut {
    routes: BTreeMap<Prefix, Holders>,
    slots: BTreeMap<IpAddr, usize>,
    free: Vec<usize>,
    /// Routes advertised per slot and family.
    counts: Vec<BTreeMap<Family, usize>>,
    interned: Interner<Vec<PathAttribute>>,
}

impl AdjOut {
    /// Give a neighbor a slot (nothing advertised yet).
    pub fn add_peer(&mut self, peer: IpAddr) {
        if self.slots.contains_key(&peer) {
            return;
        }
        let s = self.free.pop().unwrap_or(self.counts.len());
        if s == self.counts.len() {
            self.counts.push(BTreeMap::new());
        }
        self.slots.insert(peer, s);
    }

    /// Forget a neighbor and free its slot.
    pub fn remove_peer(&mut self, peer: IpAddr) {
        if let Some(mut v) = self.peer_mut(peer) {
            v.clear();
        }
        if let Some(s) = self.slots.remove(&peer) {
            self.free.push(s);
        }
    }

    /// A neighbor's view.
    pub fn peer(&self, peer: IpAddr) -> Option<PeerOut<'_>> {
        let slot = *self.slots.get(&peer)?;
        Some(PeerOut { out: self, slot })
    }

    /// A neighbor's view, for changes.
    pub fn peer_mut(&mut self, peer: IpAddr) -> Option<PeerOutMut<'_>> {
        let slot = *self.slots.get(&peer)?;
        Some(PeerOutMut { out: self, slot })
    }

    /// The interned copy of `attrs`: an equal list already stored, or `attrs` itself.
    pub fn intern(&mut self, attrs: SharedAttrs) -> SharedAttrs {
        self.interned.intern(attrs)
    }

    fn count(&mut self, slot: usize, p: &Prefix, up: bool) {
        if let Some(c) = self.counts.get_mut(slot) {
            let n = c.entry(family_of(p)).or_default();
            if up {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// One neighbor's Adj-RIB-Out, read only.
#[derive(Debug, Clone, Copy)]
pub struct PeerOut<'a> {
    out: &'a AdjOut,
    slot: usize,
}

impl<'a> PeerOut<'a> {
    /// What was advertised for `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<&'a Vec<PathAttribute>> {
        self.out.routes.get(prefix)?.get(self.slot).map(|a| &**a)
    }

    /// Routes advertised in `family` (O(1)).
    pub fn advertised(&self, family: Family) -> usize {
        self.out
            .counts
            .get(self.slot)
            .and_then(|c| c.get(&family))
            .copied()
            .unwrap_or(0)
    }

    /// All routes of `family`, in prefix order.
    pub fn family(
        self,
        family: Family,
    ) -> impl Iterator<Item = (&'a Prefix, &'a Vec<PathAttribute>)> {
        let slot = self.slot;
        self.out
            .routes
            .iter()
            .filter(move |(p, _)| family_of(p) == family)
            .filter_map(move |(p, h)| h.get(slot).map(|a| (p, &**a)))
    }
}

/// One neighbor's Adj-RIB-Out, for changes.
#[derive(Debug)]
pub struct PeerOutMut<'a> {
    out: &'a mut AdjOut,
    slot: usize,
}

impl PeerOutMut<'_> {
    /// The interned copy of `attrs` (shared by every neighbor).
    pub fn intern(&mut self, attrs: SharedAttrs) -> SharedAttrs {
        self.out.intern(attrs)
    }

    /// Record `attrs` for `prefix` unless an equal list is recorded already (always with
    /// `force`); true when recorded, i.e. when it must be sent.
    pub fn record(&mut self, prefix: Prefix, attrs: &SharedAttrs, force: bool) -> bool {
        let s = self.slot;
        let fresh = match self.out.routes.get_mut(&prefix) {
            Some(h) => {
                if let Some(a) = h.get(s)
                    && (Arc::ptr_eq(a, attrs) || **a == **attrs)
                    && !force
                {
                    return false;
                }
                let had = h.unset(s);
                h.set(s, attrs);
                !had
            }
            None => {
                self.out
                    .routes
                    .insert(prefix, Holders::One(attrs.clone(), Slots::one(s)));
                true
            }
        };
        if fresh {
            self.out.count(s, &prefix, true);
        }
        true
    }

    /// Record an advertisement.
    pub fn insert(&mut self, prefix: Prefix, attrs: Vec<PathAttribute>) {
        let a = self.intern(Arc::new(attrs));
        self.record(prefix, &a, true);
    }

    /// Record a withdrawal; true when something had been advertised.
    pub fn remove(&mut self, prefix: &Prefix) -> bool {
        let s = self.slot;
        // A neighbor sent nothing of this family (an injector we export nothing to) need not
        // look the prefix up in everyone's table.
        let family = family_of(prefix);
        if self
            .out
            .counts
            .get(s)
            .is_none_or(|c| c.get(&family).is_none_or(|n| *n == 0))
        {
            return false;
        }
        let Some(h) = self.out.routes.get_mut(prefix) else {
            return false;
        };
        let had = h.unset(s);
        if h.is_empty() {
            self.out.routes.remove(prefix);
        }
        if had {
            self.out.count(s, prefix, false);
        }
        had
    }

    /// Forget everything advertised to this neighbor (session down). Walks the table.
    pub fn clear(&mut self) {
        let s = self.slot;
        self.out.routes.retain(|_, h| {
            h.unset(s);
            !h.is_empty()
        });
        if let Some(c) = self.out.counts.get_mut(s) {
            c.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brindle_bgp_wire::Origin;

    fn attrs(o: Origin) -> SharedAttrs {
        Arc::new(vec![PathAttribute::Origin(o)])
    }

    #[test]
    fn neighbors_share_entries_and_keep_their_own_view() {
        let p = Prefix::v4("198.19.0.0".parse().unwrap(), 24).unwrap();
        let f = Family::IPV4_UNICAST;
        let mut t = AdjOut::default();
        let peers: Vec<IpAddr> = (1..=100)
            .map(|i| IpAddr::from([198, 18, 0, i as u8]))
            .collect();
        for a in &peers {
            t.add_peer(*a);
        }
        let igp = attrs(Origin::Igp);
        for a in &peers {
            assert!(t.peer_mut(*a).unwrap().record(p, &igp, false));
        }
        assert!(
            !t.peer_mut(peers[5]).unwrap().record(p, &igp, false),
            "unchanged"
        );
        assert_eq!(t.routes.len(), 1);
        assert!(matches!(t.routes[&p], Holders::One(..)));
        // One neighbor (slot beyond 64) gets other attributes, another a withdrawal.
        let inc = attrs(Origin::Incomplete);
        assert!(t.peer_mut(peers[70]).unwrap().record(p, &inc, false));
        assert!(t.peer_mut(peers[3]).unwrap().remove(&p));
        assert!(!t.peer_mut(peers[3]).unwrap().remove(&p));
        assert_eq!(t.peer(peers[70]).unwrap().get(&p), Some(&*inc));
        assert_eq!(t.peer(peers[0]).unwrap().get(&p), Some(&*igp));
        assert_eq!(t.peer(peers[3]).unwrap().get(&p), None);
        assert_eq!(t.peer(peers[0]).unwrap().advertised(f), 1);
        assert_eq!(t.peer(peers[3]).unwrap().advertised(f), 0);
        // Session down for one: the others keep theirs; a removed neighbor's slot is reused.
        t.peer_mut(peers[0]).unwrap().clear();
        assert_eq!(t.peer(peers[0]).unwrap().family(f).count(), 0);
        assert_eq!(t.peer(peers[1]).unwrap().family(f).count(), 1);
        t.remove_peer(peers[1]);
        let newcomer: IpAddr = "198.18.1.1".parse().unwrap();
        t.add_peer(newcomer);
        assert_eq!(
            t.peer(newcomer).unwrap().get(&p),
            None,
            "a reused slot starts empty"
        );
        // Everyone withdraws: the entry goes.
        for a in peers.iter().filter(|a| **a != peers[1]) {
            t.peer_mut(*a).unwrap().remove(&p);
        }
        assert!(t.routes.is_empty());
    }
}
