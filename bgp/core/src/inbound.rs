//! Receiving routes: an UPDATE from an established neighbor goes into its Adj-RIB-In (before
//! policy), through the receive checks and import policy, and into the Loc-RIB; RFC 7606
//! treat-as-withdraw findings withdraw what the UPDATE announced; End-of-RIB markers feed the
//! graceful restart logic; the max-prefix limit closes the session with Cease/1.
//!
//! Pure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use brindle_bgp_wire::{
    CeaseSubcode, Error as WireError, ErrorCode, Family, NextHop, NotificationMsg, Prefix,
    UpdateMsg,
};

use crate::event::{ConnId, Output};
use crate::policy;
use crate::rib::InEntry;
use crate::route::{Path, RouteAttrs, RouteSource, family_of};
use crate::speaker::Speaker;
use crate::time::Instant;

/// An import verdict: the post-policy attributes, or why the route is not used.
type Verdict = Result<Arc<RouteAttrs>, policy::Rejection>;

fn supported(f: Family) -> bool {
    f == Family::IPV4_UNICAST || f == Family::IPV6_UNICAST
}

impl Speaker {
    pub(crate) fn update_received(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        u: UpdateMsg,
        findings: Vec<WireError>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if let Some(f) = u.end_of_rib() {
            self.eor_received(addr, f, out);
            return;
        }
        let Some(four_octet) = self
            .neighbors
            .get(&addr)
            .and_then(|n| n.negotiated.as_ref())
            .map(|n| n.ctx.four_octet_as)
        else {
            return;
        };
        for (f, n) in u.withdrawals() {
            if supported(f) {
                self.withdraw_learned(addr, &n.prefix);
            }
        }
        let treat_as_withdraw = findings
            .iter()
            .any(|f| matches!(f, WireError::TreatAsWithdraw { .. }));
        if treat_as_withdraw {
            tracing::info!(target: "bgp.rib", event = "treat_as_withdraw", peer = %addr, findings = ?findings);
            for (f, n) in u.announced() {
                if supported(f) {
                    self.withdraw_learned(addr, &n.prefix);
                }
            }
            return;
        }
        let base = RouteAttrs::from_update(&u, four_octet);
        let mut last = None;
        if !u.nlri.is_empty() {
            let mut a = base.clone();
            a.next_hop = u.next_hop().map(IpAddr::V4);
            let (a, v) = self.import_shared(addr, Arc::new(a));
            for n in &u.nlri {
                self.learn(addr, n.prefix, &a, &v);
                last = Some(n.prefix);
            }
        }
        if let Some(mp) = u.mp_reach()
            && supported(mp.family)
        {
            let mut a = base;
            a.next_hop = Some(match mp.next_hop {
                NextHop::V4(v) => IpAddr::V4(v),
                NextHop::V6 { global, .. } => IpAddr::V6(global),
            });
            let (a, v) = self.import_shared(addr, Arc::new(a));
            for n in &mp.nlri {
                self.learn(addr, n.prefix, &a, &v);
                last = Some(n.prefix);
            }
        }
        if let Some(p) = last {
            self.check_max_prefix(addr, c, family_of(&p), now, out);
        }
    }

    /// Intern received attributes and apply the prefix-independent part of import policy
    /// ([`policy::import_attrs`]) once for every route that carries them. The post-policy
    /// attributes are interned too (the received ones themselves when policy changed nothing).
    fn import_shared(
        &mut self,
        addr: IpAddr,
        attrs: Arc<RouteAttrs>,
    ) -> (Arc<RouteAttrs>, Verdict) {
        let attrs = self.interner.intern(attrs);
        let Some(n) = self.neighbors.get(&addr) else {
            return (attrs, Err(policy::Rejection::Filter));
        };
        let ebgp = n.is_ebgp(self.config.local_as);
        let v = policy::import_attrs(&self.config, &n.config, ebgp, (*attrs).clone()).map(|a| {
            if a == *attrs {
                attrs.clone()
            } else {
                self.interner.intern(Arc::new(a))
            }
        });
        (attrs, v)
    }

    /// Store one announced route and apply import policy: `base` is the verdict of
    /// [`Self::import_shared`] for its attributes, the import filter is checked here.
    fn learn(&mut self, addr: IpAddr, prefix: Prefix, attrs: &Arc<RouteAttrs>, base: &Verdict) {
        let verdict = self.filter_verdict(addr, &prefix, base);
        let keep_refused = self
            .neighbors
            .get(&addr)
            .is_some_and(|n| n.config.soft_reconfiguration_inbound);
        if let Some(rib) = self.adj_in.get_mut(&addr) {
            if verdict.is_err() && !keep_refused {
                rib.refuse(prefix);
            } else {
                rib.insert(
                    prefix,
                    InEntry {
                        attrs: attrs.clone(),
                        verdict: verdict.clone(),
                        stale: false,
                    },
                );
            }
        }
        self.apply_verdict(addr, prefix, verdict);
    }

    /// The import verdict of one prefix given the verdict for its attributes.
    fn filter_verdict(&self, addr: IpAddr, prefix: &Prefix, base: &Verdict) -> Verdict {
        let r = match (base, self.neighbors.get(&addr)) {
            (_, None) => Err(policy::Rejection::Filter),
            (Ok(_), Some(n)) if !policy::filter_accepts(&n.config.import, prefix) => {
                Err(policy::Rejection::Filter)
            }
            (v, Some(_)) => v.clone(),
        };
        if let Err(why) = &r {
            tracing::debug!(target: "bgp.rib", event = "route_rejected", peer = %addr, %prefix, reason = ?why);
        }
        r
    }

    fn apply_verdict(&mut self, addr: IpAddr, prefix: Prefix, verdict: Verdict) {
        let Some(n) = self.neighbors.get(&addr) else {
            return;
        };
        match verdict {
            Ok(attrs) => {
                let path = Path {
                    source: RouteSource::Peer(addr),
                    attrs,
                    ebgp: n.is_ebgp(self.config.local_as),
                    peer_router_id: n
                        .negotiated
                        .as_ref()
                        .map_or(std::net::Ipv4Addr::UNSPECIFIED, |x| x.remote_id),
                    stale: false,
                    since: self.clock,
                };
                self.loc.upsert(prefix, path);
            }
            Err(_) => {
                self.loc.remove(&prefix, RouteSource::Peer(addr));
            }
        }
    }

    /// Forget a route the neighbor withdrew.
    pub(crate) fn withdraw_learned(&mut self, addr: IpAddr, prefix: &Prefix) {
        if let Some(rib) = self.adj_in.get_mut(&addr) {
            rib.remove(prefix);
        }
        self.loc.remove(prefix, RouteSource::Peer(addr));
    }

    /// Re-run import policy over the neighbor's Adj-RIB-In (after a filter change).
    pub(crate) fn reimport(&mut self, addr: IpAddr) {
        let entries: Vec<(Prefix, Arc<RouteAttrs>, bool)> = match self.adj_in.get(&addr) {
            Some(rib) => rib
                .iter()
                .map(|(p, e)| (*p, e.attrs.clone(), e.stale))
                .collect(),
            None => return,
        };
        let mut shared: HashMap<*const RouteAttrs, (Arc<RouteAttrs>, Verdict)> = HashMap::new();
        for (p, attrs, stale) in entries {
            let (_, base) = match shared.get(&Arc::as_ptr(&attrs)) {
                Some(x) => x.clone(),
                None => {
                    let x = self.import_shared(addr, attrs.clone());
                    // Keyed by the stored Arc, which the entry keeps alive.
                    shared.insert(Arc::as_ptr(&attrs), (attrs, x.1.clone()));
                    x
                }
            };
            let verdict = self.filter_verdict(addr, &p, &base);
            if let Some(r) = self.adj_in.get_mut(&addr) {
                r.set_verdict(&p, verdict.clone());
            }
            self.apply_verdict(addr, p, verdict);
            if stale {
                self.loc.set_stale(&p, RouteSource::Peer(addr), true);
            }
        }
    }

    fn check_max_prefix(
        &mut self,
        addr: IpAddr,
        c: ConnId,
        family: Family,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(limit) = self.neighbors.get(&addr).and_then(|n| {
            n.config
                .max_prefixes
                .or(if n.is_ebgp(self.config.local_as) {
                    self.config.default_max_prefixes_ebgp
                } else {
                    self.config.default_max_prefixes_ibgp
                })
        }) else {
            return;
        };
        // Every route received counts, those import policy refuses too (stored or only
        // counted), so a flood of refused routes still closes the session (O(1): the
        // Adj-RIB-In keeps its sizes).
        let received = self.adj_in.get(&addr).map_or(0, |r| r.received_total());
        if received <= usize::try_from(limit).unwrap_or(usize::MAX) {
            return;
        }
        tracing::warn!(target: "bgp.rib", event = "max_prefix_exceeded", peer = %addr, limit, received);
        let mut data = family.afi.0.to_be_bytes().to_vec();
        data.push(family.safi.0);
        data.extend_from_slice(&limit.to_be_bytes());
        let n = NotificationMsg::new(ErrorCode::Cease(CeaseSubcode::MaxPrefixesReached), data);
        self.fail(
            addr,
            c,
            n,
            format!("maximum number of prefixes ({limit}) exceeded: {received} received"),
            now,
            out,
        );
    }
}
