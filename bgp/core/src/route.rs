//! Routes as the core stores them: [`RouteAttrs`] is a normalized view of an UPDATE's path
//! attributes (AS4_PATH merged, next hop per family), [`Path`] is one candidate for a prefix
//! in the Loc-RIB with what the decision process needs to know about where it came from.
//!
//! Pure: conversions between wire attributes and the normalized form.

use std::collections::HashSet;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use brindle_bgp_wire::{
    Aggregator, AsPath, Community, ExtendedCommunity, Family, LargeCommunity, MpReach, NextHop,
    Origin, PathAttribute, Prefix, RawAttribute, SessionContext, UpdateMsg,
};

/// The default LOCAL_PREF (RFC 4271 §5.1.5 leaves it to configuration; 100 is customary).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// The unicast family a prefix belongs to.
pub fn family_of(prefix: &Prefix) -> Family {
    match prefix {
        Prefix::V4(..) => Family::IPV4_UNICAST,
        Prefix::V6(..) => Family::IPV6_UNICAST,
    }
}

/// Path attributes in normalized form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// ORIGIN.
    pub origin: Origin,
    /// AS_PATH (AS4_PATH already merged on 2-octet sessions).
    pub as_path: AsPath,
    /// The next hop for this route's family; `None` for routes we originate.
    pub next_hop: Option<IpAddr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (absent on routes from eBGP neighbors).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR (AS4_AGGREGATOR already merged).
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// EXTENDED_COMMUNITIES.
    pub ext_communities: Vec<ExtendedCommunity>,
    /// LARGE_COMMUNITIES.
    pub large_communities: Vec<LargeCommunity>,
    /// ORIGINATOR_ID (RFC 4456).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456).
    pub cluster_list: Vec<Ipv4Addr>,
    /// Unknown optional attributes as received.
    pub unknown: Vec<RawAttribute>,
}

impl Default for RouteAttrs {
    fn default() -> Self {
        RouteAttrs {
            origin: Origin::Igp,
            as_path: AsPath::default(),
            next_hop: None,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities: Vec::new(),
            ext_communities: Vec::new(),
            large_communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
            unknown: Vec::new(),
        }
    }
}

impl RouteAttrs {
    /// The attributes of an UPDATE, without next hop (set per family by the caller).
    /// `four_octet` says whether the session negotiated 4-octet AS (else AS4_PATH and
    /// AS4_AGGREGATOR are merged, RFC 6793 §4.2.3).
    pub fn from_update(update: &UpdateMsg, four_octet: bool) -> RouteAttrs {
        let mut a = RouteAttrs::default();
        let mut as4_path = None;
        let mut as4_agg = None;
        for attr in &update.attributes {
            match attr {
                PathAttribute::Origin(o) => a.origin = *o,
                PathAttribute::AsPath(p) => a.as_path = p.clone(),
                PathAttribute::NextHop(_) | PathAttribute::MpReach(_) => {}
                PathAttribute::MpUnreach(_) => {}
                PathAttribute::MultiExitDisc(m) => a.med = Some(*m),
                PathAttribute::LocalPref(l) => a.local_pref = Some(*l),
                PathAttribute::AtomicAggregate => a.atomic_aggregate = true,
                PathAttribute::Aggregator(g) => a.aggregator = Some(*g),
                PathAttribute::Communities(c) => a.communities = c.clone(),
                PathAttribute::OriginatorId(o) => a.originator_id = Some(*o),
                PathAttribute::ClusterList(c) => a.cluster_list = c.clone(),
                PathAttribute::ExtendedCommunities(c) => a.ext_communities = c.clone(),
                PathAttribute::As4Path(p) => as4_path = Some(p),
                PathAttribute::As4Aggregator(g) => as4_agg = Some(*g),
                PathAttribute::LargeCommunities(c) => a.large_communities = c.clone(),
                PathAttribute::Unknown(r) => a.unknown.push(r.clone()),
            }
        }
        if !four_octet {
            if let Some(p) = as4_path {
                a.as_path = a.as_path.merge_as4(p);
            }
            if let (Some(g), Some(agg)) = (as4_agg, a.aggregator)
                && agg.asn == u32::from(brindle_bgp_wire::AS_TRANS)
            {
                a.aggregator = Some(g);
            }
        }
        a
    }

    /// The effective LOCAL_PREF.
    pub fn local_pref_or_default(&self) -> u32 {
        self.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }

    /// Wire attributes for announcing a route of `family` with these attributes (next hop
    /// included) on a session with `ctx`: NEXT_HOP for IPv4 unicast, an MP_REACH_NLRI template
    /// otherwise, AS4_PATH on 2-octet sessions when needed. `None` when the next hop is
    /// missing or of the wrong family.
    pub fn to_wire(&self, family: Family, ctx: &SessionContext) -> Option<Vec<PathAttribute>> {
        let nh = self.next_hop?;
        let mut v = vec![
            PathAttribute::Origin(self.origin),
            PathAttribute::AsPath(self.as_path.clone()),
        ];
        match (family == Family::IPV4_UNICAST, nh) {
            (true, IpAddr::V4(a)) => v.push(PathAttribute::NextHop(a)),
            (false, IpAddr::V6(global)) => v.push(PathAttribute::MpReach(MpReach {
                family,
                next_hop: NextHop::V6 {
                    global,
                    link_local: None,
                },
                nlri: Vec::new(),
            })),
            (false, IpAddr::V4(a)) if family.afi == brindle_bgp_wire::Afi::IPV4 => {
                v.push(PathAttribute::MpReach(MpReach {
                    family,
                    next_hop: NextHop::V4(a),
                    nlri: Vec::new(),
                }))
            }
            _ => return None,
        }
        if let Some(m) = self.med {
            v.push(PathAttribute::MultiExitDisc(m));
        }
        if let Some(l) = self.local_pref {
            v.push(PathAttribute::LocalPref(l));
        }
        if self.atomic_aggregate {
            v.push(PathAttribute::AtomicAggregate);
        }
        if let Some(g) = self.aggregator {
            v.push(PathAttribute::Aggregator(g));
        }
        if !self.communities.is_empty() {
            v.push(PathAttribute::Communities(self.communities.clone()));
        }
        if let Some(o) = self.originator_id {
            v.push(PathAttribute::OriginatorId(o));
        }
        if !self.cluster_list.is_empty() {
            v.push(PathAttribute::ClusterList(self.cluster_list.clone()));
        }
        if !self.ext_communities.is_empty() {
            v.push(PathAttribute::ExtendedCommunities(
                self.ext_communities.clone(),
            ));
        }
        if !ctx.four_octet_as && self.as_path.needs_as4_path() {
            v.push(PathAttribute::As4Path(self.as_path.clone()));
            if let Some(g) = self.aggregator.filter(|g| g.asn > u32::from(u16::MAX)) {
                v.push(PathAttribute::As4Aggregator(g));
            }
        }
        if !self.large_communities.is_empty() {
            v.push(PathAttribute::LargeCommunities(
                self.large_communities.clone(),
            ));
        }
        v.extend(
            self.unknown
                .iter()
                .filter_map(|r| r.for_readvertise().map(PathAttribute::Unknown)),
        );
        v.sort_by_key(|a| a.type_code());
        Some(v)
    }
}

/// Where a path came from. `Local` sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteSource {
    /// Originated by this speaker.
    Local,
    /// Learned from the neighbor at this address.
    Peer(IpAddr),
}

impl RouteSource {
    /// The neighbor, for learned paths.
    pub fn peer(&self) -> Option<IpAddr> {
        match self {
            RouteSource::Local => None,
            RouteSource::Peer(p) => Some(*p),
        }
    }
}

/// One candidate path for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Where it came from.
    pub source: RouteSource,
    /// Its attributes (after import policy).
    pub attrs: Arc<RouteAttrs>,
    /// Learned over eBGP.
    pub ebgp: bool,
    /// The BGP identifier of the neighbor it came from (ours for local paths).
    pub peer_router_id: Ipv4Addr,
    /// Kept by the graceful restart helper while the neighbor restarts.
    pub stale: bool,
    /// When it was learned or last replaced (the speaker's clock).
    pub since: crate::time::Instant,
}

impl Path {
    /// Equal in everything but age.
    pub fn same_route(&self, other: &Path) -> bool {
        self.source == other.source
            && self.attrs == other.attrs
            && self.ebgp == other.ebgp
            && self.peer_router_id == other.peer_router_id
            && self.stale == other.stale
    }

    /// The neighbor's AS for the MED rule: the first AS of the AS_PATH (RFC 4271 §9.1.2.2 c),
    /// `None` for local routes and empty paths.
    pub fn neighbor_as(&self) -> Option<u32> {
        self.attrs.as_path.first_as()
    }

    /// The identifier used in the router-id tie break: ORIGINATOR_ID when present
    /// (RFC 4456 §9), else the neighbor's BGP identifier.
    pub fn tie_break_id(&self) -> Ipv4Addr {
        self.attrs.originator_id.unwrap_or(self.peer_router_id)
    }
}

/// Hash-consing of shared values (attribute sets): equal values are stored once and shared by
/// every route that carries them. Entries nobody else holds any more are pruned whenever the
/// table has doubled since the last prune, so the cost stays amortized O(1) per lookup.
#[derive(Debug, Clone)]
pub struct Interner<T> {
    set: HashSet<Arc<T>>,
    pruned_len: usize,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: HashSet::new(),
            pruned_len: 0,
        }
    }
}

impl<T: Hash + Eq> Interner<T> {
    /// The shared copy of `v`: an equal value already interned, or `v` itself from now on.
    pub fn intern(&mut self, v: Arc<T>) -> Arc<T> {
        if let Some(a) = self.set.get(&v) {
            return a.clone();
        }
        if self.set.len() >= 2 * self.pruned_len + 64 {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.pruned_len = self.set.len();
        }
        self.set.insert(v.clone());
        v
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.set.clear();
        self.pruned_len = 0;
    }
}
