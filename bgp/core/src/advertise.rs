//! Sending routes: for each established neighbor, the desired Adj-RIB-Out entry of a prefix
//! is the best path passed through the export rules ([`crate::policy::export`]); only
//! differences with what was sent before go out. Announcements sharing attributes are packed
//! into as few UPDATEs as possible with `brindle_bgp_wire::pack_updates`, withdrawals with
//! `pack_withdrawals`. Also: the initial table plus End-of-RIB per family when a session comes
//! up, and ROUTE-REFRESH handling (RFC 2918, RFC 7313 BoRR/EoRR).
//!
//! Pure.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use brindle_bgp_wire::{
    Family, Message, Nlri, PathAttribute, Prefix, RefreshSubtype, RouteRefreshMsg, SessionContext,
    UpdateMsg, pack_updates, pack_withdrawals,
};

use crate::event::{ConnId, Output, PeerTimer, TimerId};
use crate::policy::{self, ExportTarget, SourceInfo};
use crate::rib::adj_out::SharedAttrs;
use crate::route::{Path, RouteAttrs, RouteSource, family_of};
use crate::speaker::Speaker;

/// The least time between two full resends of one family to one neighbor on ROUTE-REFRESH.
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Which prefixes an advertisement pass looks at.
pub(crate) enum Scope<'a> {
    /// These prefixes.
    Prefixes(&'a [Prefix]),
    /// Every prefix of the family (Loc-RIB and Adj-RIB-Out).
    Family(Family),
}

/// Export results of one advertisement pass towards one neighbor, per distinct best path:
/// the export rules depend on the prefix only through the export filter (checked per prefix)
/// and its family, so each attribute set is exported and converted to wire form once.
#[derive(Default)]
struct ExportCache {
    map: HashMap<ExportKey, (Arc<RouteAttrs>, Option<SharedAttrs>)>,
}

/// The best path's attributes (by identity), source, neighbor router id, and the family.
type ExportKey = (*const RouteAttrs, RouteSource, Ipv4Addr, Family);

impl Speaker {
    /// The wire attributes `peer` should have for `prefix` whose best path is `best`, or
    /// `None`.
    fn desired(
        &self,
        peer: IpAddr,
        prefix: &Prefix,
        best: Option<&Path>,
        ctx: &SessionContext,
        cache: &mut ExportCache,
    ) -> Option<SharedAttrs> {
        let family = family_of(prefix);
        if !ctx.families.contains(&family) {
            return None;
        }
        let target = self.neighbors.get(&peer)?;
        let best = best?;
        if best.source == RouteSource::Peer(peer)
            || !policy::filter_accepts(&target.config.export, prefix)
        {
            return None;
        }
        let key = (
            Arc::as_ptr(&best.attrs),
            best.source,
            best.peer_router_id,
            family,
        );
        if let Some((_, v)) = cache.map.get(&key) {
            return v.clone();
        }
        let source = match best.source {
            RouteSource::Local => None,
            RouteSource::Peer(p) => {
                let n = self.neighbors.get(&p)?;
                Some(SourceInfo {
                    ebgp: n.is_ebgp(self.config.local_as),
                    rr_client: n.config.route_reflector_client,
                    router_id: best.peer_router_id,
                })
            }
        };
        let t = ExportTarget {
            config: &target.config,
            ebgp: target.is_ebgp(self.config.local_as),
            self_v4: target.self_v4(),
            self_v6: target.self_v6(),
        };
        let wire = policy::export(&self.config, prefix, best, source, &t)
            .and_then(|a| a.to_wire(family, ctx))
            .map(Arc::new);
        // Keep the path's attributes alive with the entry, so the key's pointer stays unique.
        cache.map.insert(key, (best.attrs.clone(), wire.clone()));
        wire
    }

    fn session_of(&self, peer: IpAddr) -> Option<(ConnId, SessionContext)> {
        let n = self.neighbors.get(&peer)?;
        Some((n.session?, n.negotiated.as_ref()?.ctx.clone()))
    }

    /// Compute and send the Adj-RIB-Out difference of `peer` over `scope`. With `force`,
    /// every desired route is sent even when unchanged (route refresh).
    pub(crate) fn advertise_to(
        &mut self,
        peer: IpAddr,
        scope: Scope<'_>,
        force: bool,
        out: &mut Vec<Output>,
    ) {
        if self.session_of(peer).is_none() {
            return;
        }
        let owned: Vec<Prefix>;
        let prefixes: &[Prefix] = match scope {
            // The decision process hands over sorted, distinct prefixes: use them as they are.
            Scope::Prefixes(p) if p.windows(2).all(|w| w[0] < w[1]) => p,
            Scope::Prefixes(p) => {
                owned = BTreeSet::from_iter(p.iter().copied()).into_iter().collect();
                &owned
            }
            Scope::Family(f) => {
                let mut s: BTreeSet<Prefix> = self
                    .loc
                    .iter()
                    .map(|(p, _)| *p)
                    .filter(|p| family_of(p) == f)
                    .collect();
                if let Some(o) = self.adj_out.peer(peer) {
                    s.extend(o.family(f).map(|(p, _)| *p));
                }
                owned = s.into_iter().collect();
                &owned
            }
        };
        let bests = self.bests(prefixes);
        self.advertise_list(peer, prefixes, &bests, force, out);
    }

    /// The best path of each prefix (cloned: one Loc-RIB lookup per prefix however many
    /// neighbors the change goes to).
    fn bests(&self, prefixes: &[Prefix]) -> Vec<Option<Path>> {
        prefixes
            .iter()
            .map(|p| self.loc.get(p).and_then(|d| d.best()).cloned())
            .collect()
    }

    /// Send `peer` the Adj-RIB-Out difference over sorted, distinct `prefixes` whose best
    /// paths are `bests`.
    fn advertise_list(
        &mut self,
        peer: IpAddr,
        prefixes: &[Prefix],
        bests: &[Option<Path>],
        force: bool,
        out: &mut Vec<Output>,
    ) {
        let Some((conn, ctx)) = self.session_of(peer) else {
            return;
        };
        let mut cache = ExportCache::default();
        let mut announce: Vec<(Prefix, SharedAttrs)> = Vec::new();
        let mut withdraw: Vec<Prefix> = Vec::new();
        // The last attribute list interned, to skip the interner for runs of equal routes.
        let mut last: Option<(SharedAttrs, SharedAttrs)> = None;
        for (p, best) in prefixes.iter().zip(bests) {
            let want = self.desired(peer, p, best.as_ref(), &ctx, &mut cache);
            let Some(mut rib) = self.adj_out.peer_mut(peer) else {
                return;
            };
            match want {
                Some(a) => {
                    let a = match &last {
                        Some((raw, interned)) if Arc::ptr_eq(raw, &a) => interned.clone(),
                        _ => {
                            let i = rib.intern(a.clone());
                            last = Some((a, i.clone()));
                            i
                        }
                    };
                    if rib.record(*p, &a, force) {
                        announce.push((*p, a));
                    }
                }
                None => {
                    if rib.remove(p) {
                        withdraw.push(*p);
                    }
                }
            }
        }
        let unsendable = send_updates(peer, conn, &ctx, &announce, &withdraw, out);
        // What could not be encoded is not advertised: the Adj-RIB-Out must not claim it (the
        // neighbor was sent a withdrawal of it instead).
        if let Some(mut rib) = self.adj_out.peer_mut(peer) {
            for p in &unsendable {
                rib.remove(p);
            }
        }
    }

    /// Send the changes of `prefixes` to every synced session.
    pub(crate) fn advertise_changes(&mut self, prefixes: &[Prefix], out: &mut Vec<Output>) {
        if prefixes.is_empty() {
            return;
        }
        let peers: Vec<IpAddr> = self
            .neighbors
            .iter()
            .filter(|(_, n)| n.synced && n.session.is_some())
            .map(|(a, _)| *a)
            .collect();
        if peers.is_empty() {
            return;
        }
        // The decision process hands over sorted, distinct prefixes.
        let owned: Vec<Prefix>;
        let prefixes = if prefixes.windows(2).all(|w| w[0] < w[1]) {
            prefixes
        } else {
            owned = BTreeSet::from_iter(prefixes.iter().copied())
                .into_iter()
                .collect();
            &owned
        };
        let bests = self.bests(prefixes);
        for p in peers {
            if !self.hold_back(p, prefixes) {
                self.advertise_list(p, prefixes, &bests, false, out);
            }
        }
    }

    /// Re-evaluate everything sent to `peer` (after an export policy change).
    pub(crate) fn readvertise(&mut self, peer: IpAddr, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get(&peer) else {
            return;
        };
        if !n.synced {
            return;
        }
        let fams: Vec<Family> = n
            .negotiated
            .iter()
            .flat_map(|x| x.ctx.families.iter().copied())
            .collect();
        for f in fams {
            if !self.hold_back_family(peer, f, false) {
                self.advertise_to(peer, Scope::Family(f), false, out);
            }
        }
    }

    /// Sessions that came up get the whole table and End-of-RIB for every family.
    pub(crate) fn initial_sync(&mut self, out: &mut Vec<Output>) {
        let peers: Vec<IpAddr> = self
            .neighbors
            .iter()
            .filter(|(_, n)| !n.synced && n.session.is_some())
            .map(|(a, _)| *a)
            .collect();
        for p in peers {
            let Some((conn, ctx)) = self.session_of(p) else {
                continue;
            };
            for f in ctx.families.iter().copied() {
                self.advertise_to(p, Scope::Family(f), false, out);
                out.push(Output::Send {
                    peer: p,
                    conn_id: conn,
                    msg: Message::Update(UpdateMsg::end_of_rib_marker(f)),
                });
            }
            tracing::debug!(target: "bgp.rib", event = "initial_sync_done", peer = %p);
            if let Some(n) = self.neighbors.get_mut(&p) {
                n.synced = true;
            }
        }
    }

    /// Resends the neighbor's Adj-RIB-Out of `family` (between BoRR and EoRR with enhanced
    /// route refresh) and records when, for the rate limit.
    pub(crate) fn serve_refresh(
        &mut self,
        peer: IpAddr,
        conn: ConnId,
        family: Family,
        out: &mut Vec<Output>,
    ) {
        if self.hold_back_family(peer, family, true) {
            return;
        }
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        if !n.synced {
            return;
        }
        let Some(enhanced) = n.negotiated.as_ref().map(|x| x.enhanced_route_refresh) else {
            return;
        };
        n.refresh_served.insert(family, self.clock);
        let rr = |subtype| Output::Send {
            peer,
            conn_id: conn,
            msg: Message::RouteRefresh(RouteRefreshMsg { family, subtype }),
        };
        if enhanced {
            out.push(rr(RefreshSubtype::BeginOfRefresh));
        }
        self.advertise_to(peer, Scope::Family(family), true, out);
        if enhanced {
            out.push(rr(RefreshSubtype::EndOfRefresh));
        }
    }

    /// The deferred ROUTE-REFRESH of `family` is due: serve it on the current session.
    pub(crate) fn refresh_due(&mut self, peer: IpAddr, family: Family, out: &mut Vec<Output>) {
        let Some(conn) = self.neighbors.get(&peer).and_then(|n| n.session) else {
            return;
        };
        self.serve_refresh(peer, conn, family, out);
    }

    /// A ROUTE-REFRESH from the neighbor: resend its Adj-RIB-Out of the family (between BoRR
    /// and EoRR with enhanced route refresh), or handle its BoRR / EoRR.
    pub(crate) fn refresh_received(
        &mut self,
        peer: IpAddr,
        conn: ConnId,
        r: RouteRefreshMsg,
        out: &mut Vec<Output>,
    ) {
        let Some(neg) = self.neighbors.get(&peer).and_then(|n| n.negotiated.clone()) else {
            return;
        };
        if !neg.ctx.families.contains(&r.family) {
            return;
        }
        match r.subtype {
            RefreshSubtype::Normal => {
                // Rate limit: one full resend per family per REFRESH_INTERVAL. A request that
                // comes sooner is served when the interval ends, once however many came.
                let now = self.clock;
                let last = self
                    .neighbors
                    .get(&peer)
                    .and_then(|n| n.refresh_served.get(&r.family).copied());
                if let Some(l) = last
                    && now < l + REFRESH_INTERVAL
                {
                    let t = TimerId::Peer(peer, PeerTimer::RouteRefresh(r.family));
                    if !self.timers.is_armed(t) {
                        tracing::info!(target: "bgp.refresh", event = "refresh_deferred", %peer, family = %r.family);
                        self.timers.arm(t, l + REFRESH_INTERVAL, out);
                    }
                    return;
                }
                self.serve_refresh(peer, conn, r.family, out);
            }
            RefreshSubtype::BeginOfRefresh => self.mark_stale(peer, r.family),
            RefreshSubtype::EndOfRefresh => self.flush_stale(peer, Some(r.family)),
            RefreshSubtype::Unknown(_) => {}
        }
    }

    /// Ask the neighbor to resend a family (inbound soft reset).
    pub(crate) fn request_refresh(&mut self, peer: IpAddr, family: Family, out: &mut Vec<Output>) {
        let Some(n) = self.neighbors.get(&peer) else {
            return;
        };
        let (Some(conn), Some(neg)) = (n.session, n.negotiated.as_ref()) else {
            return;
        };
        if neg.route_refresh && neg.ctx.families.contains(&family) {
            out.push(Output::Send {
                peer,
                conn_id: conn,
                msg: Message::RouteRefresh(RouteRefreshMsg::new(family)),
            });
        }
    }
}

/// Pack withdrawals (per family) then announcements (grouped by identical attributes, in
/// prefix order of each group's first prefix) into one `SendEncoded`.
/// Encodes and sends the withdrawals and announcements. Returns the announced prefixes whose
/// path could not be encoded (say, an AS_PATH too long for one message): they are withdrawn
/// from the neighbor instead, reported, and must leave the Adj-RIB-Out.
fn send_updates(
    peer: IpAddr,
    conn: ConnId,
    ctx: &SessionContext,
    announce: &[(Prefix, SharedAttrs)],
    withdraw: &[Prefix],
    out: &mut Vec<Output>,
) -> Vec<Prefix> {
    if announce.is_empty() && withdraw.is_empty() {
        return Vec::new();
    }
    let max = ctx.max_message_len();
    let mut bytes = Vec::new();
    let mut unsendable: Vec<Prefix> = Vec::new();
    let mut push = |r: Result<Vec<Vec<u8>>, brindle_bgp_wire::Error>| match r {
        Ok(msgs) => {
            msgs.into_iter().for_each(|m| bytes.extend_from_slice(&m));
            true
        }
        Err(e) => {
            tracing::error!(target: "bgp.rib", event = "encode_failed", peer = %peer, error = %e);
            false
        }
    };
    let withdrawals = |list: &[Prefix], push: &mut dyn FnMut(_) -> bool| {
        for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            let w: Vec<Nlri> = list
                .iter()
                .filter(|p| family_of(p) == f)
                .map(|p| Nlri::new(*p))
                .collect();
            if !w.is_empty() {
                push(pack_withdrawals(f, &w, ctx, max));
            }
        }
    };
    withdrawals(withdraw, &mut push);
    // Group by identical attributes: by identity first (shared lists), then by value.
    let mut by_ptr: HashMap<*const Vec<PathAttribute>, usize> = HashMap::new();
    let mut index: HashMap<&Vec<PathAttribute>, usize> = HashMap::new();
    let mut groups: Vec<(&Vec<PathAttribute>, Vec<Nlri>)> = Vec::new();
    for (p, a) in announce {
        let i = *by_ptr.entry(Arc::as_ptr(a)).or_insert_with(|| {
            *index.entry(&**a).or_insert_with(|| {
                groups.push((&**a, Vec::new()));
                groups.len() - 1
            })
        });
        groups[i].1.push(Nlri::new(*p));
    }
    for (a, nlri) in groups {
        if !push(pack_updates(a, &nlri, ctx, max)) {
            for n in &nlri {
                tracing::error!(target: "bgp.rib", event = "route_not_advertised", %peer, prefix = %n.prefix, "its path cannot be encoded; withdrawn from the neighbor");
            }
            unsendable.extend(nlri.iter().map(|n| n.prefix));
        }
    }
    withdrawals(&unsendable, &mut push);
    if !bytes.is_empty() {
        out.push(Output::SendEncoded {
            peer,
            conn_id: conn,
            bytes,
        });
    }
    unsendable
}
