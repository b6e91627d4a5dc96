//! Import and export policy: Calico BGPFilter rules (ordered, first match wins, default
//! accept), the receive-side checks (AS_PATH loop with allowas-in, first AS, route reflection
//! loops) and the advertisement rules (split horizon, eBGP prepend / next hop self / LOCAL_PREF
//! and MED stripping, iBGP LOCAL_PREF and reflection attributes).
//!
//! Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use brindle_bgp_wire::Prefix;

use crate::config::{FilterAction, FilterRule, MatchOperator, PeerConfig, SpeakerConfig};
use crate::reflector;
use crate::route::{Path, RouteAttrs, RouteSource};

/// True when `inner` lies within `outer` (same family, at least as long, same leading bits).
pub fn prefix_within(inner: &Prefix, outer: &Prefix) -> bool {
    match (inner, outer) {
        (Prefix::V4(a, l), Prefix::V4(_, ol)) if l >= ol => {
            Prefix::v4(*a, *ol).is_some_and(|p| p == *outer)
        }
        (Prefix::V6(a, l), Prefix::V6(_, ol)) if l >= ol => {
            Prefix::v6(*a, *ol).is_some_and(|p| p == *outer)
        }
        _ => false,
    }
}

/// Does `rule` match `prefix`? A CIDR of the other address family never matches.
pub fn rule_matches(rule: &FilterRule, prefix: &Prefix) -> bool {
    if let Some((cidr, op)) = &rule.cidr {
        if cidr.afi() != prefix.afi() {
            return false;
        }
        let hit = match op {
            MatchOperator::Equal => prefix == cidr,
            MatchOperator::NotEqual => prefix != cidr,
            MatchOperator::In => prefix_within(prefix, cidr),
            MatchOperator::NotIn => !prefix_within(prefix, cidr),
        };
        if !hit {
            return false;
        }
    }
    rule.min_len.is_none_or(|m| prefix.len() >= m) && rule.max_len.is_none_or(|m| prefix.len() <= m)
}

/// Evaluate ordered rules: the first match decides; no match accepts.
pub fn filter_accepts(rules: &[FilterRule], prefix: &Prefix) -> bool {
    rules
        .iter()
        .find(|r| rule_matches(r, prefix))
        .is_none_or(|r| r.action == FilterAction::Accept)
}

/// Why a received route is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Our AS appears in the AS_PATH more often than allowas-in permits.
    AsPathLoop,
    /// The first AS of an eBGP route is not the neighbor's AS.
    FirstAsMismatch,
    /// RFC 4456 loop.
    ReflectionLoop,
    /// No usable next hop.
    NoNextHop,
    /// The import filter rejected it.
    Filter,
}

/// The receive-side checks and import policy; on success, the attributes as stored (eBGP:
/// LOCAL_PREF removed).
pub fn import(
    speaker: &SpeakerConfig,
    peer: &PeerConfig,
    ebgp: bool,
    prefix: &Prefix,
    attrs: RouteAttrs,
) -> Result<RouteAttrs, Rejection> {
    let attrs = import_attrs(speaker, peer, ebgp, attrs)?;
    if !filter_accepts(&peer.import, prefix) {
        return Err(Rejection::Filter);
    }
    Ok(attrs)
}

/// The part of [`import`] that does not depend on the prefix: every check but the import
/// filter, and the eBGP attribute stripping. `import` = this, then the filter.
pub fn import_attrs(
    speaker: &SpeakerConfig,
    peer: &PeerConfig,
    ebgp: bool,
    mut attrs: RouteAttrs,
) -> Result<RouteAttrs, Rejection> {
    let own = attrs
        .as_path
        .segments
        .iter()
        .flat_map(|s| s.asns.iter())
        .filter(|a| **a == speaker.local_as)
        .count();
    if own > usize::from(peer.allow_as_in) {
        return Err(Rejection::AsPathLoop);
    }
    if ebgp && attrs.as_path.first_as() != Some(peer.remote_as) {
        return Err(Rejection::FirstAsMismatch);
    }
    if !ebgp
        && reflector::loop_reason(&attrs, speaker.router_id, speaker.effective_cluster_id())
            .is_some()
    {
        return Err(Rejection::ReflectionLoop);
    }
    if attrs.next_hop.is_none() {
        return Err(Rejection::NoNextHop);
    }
    if ebgp {
        attrs.local_pref = None;
        attrs.originator_id = None;
        attrs.cluster_list.clear();
    }
    Ok(attrs)
}

/// What the export rules need to know about the neighbor a path was learned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceInfo {
    /// Learned over eBGP.
    pub ebgp: bool,
    /// The neighbor is our route reflector client.
    pub rr_client: bool,
    /// The neighbor's BGP identifier.
    pub router_id: Ipv4Addr,
}

/// The neighbor a route is exported to.
#[derive(Debug, Clone, Copy)]
pub struct ExportTarget<'a> {
    /// Its configuration.
    pub config: &'a PeerConfig,
    /// It is an eBGP neighbor.
    pub ebgp: bool,
    /// Our IPv4 next hop towards it.
    pub self_v4: Option<Ipv4Addr>,
    /// Our IPv6 next hop towards it.
    pub self_v6: Option<Ipv6Addr>,
}

impl ExportTarget<'_> {
    fn self_next_hop(&self, prefix: &Prefix) -> Option<IpAddr> {
        match prefix {
            Prefix::V4(..) => self.self_v4.map(IpAddr::V4),
            Prefix::V6(..) => self.self_v6.map(IpAddr::V6),
        }
    }
}

/// The attributes to advertise `path` (the best path of `prefix`) with to `target`, or
/// `None` when it must not be advertised there. `source` is `None` for local routes.
pub fn export(
    speaker: &SpeakerConfig,
    prefix: &Prefix,
    path: &Path,
    source: Option<SourceInfo>,
    target: &ExportTarget<'_>,
) -> Option<RouteAttrs> {
    if path.source == RouteSource::Peer(target.config.address) {
        return None;
    }
    let from_ibgp = source.is_some_and(|s| !s.ebgp);
    let reflecting = from_ibgp && !target.ebgp;
    if reflecting
        && !reflector::may_reflect(
            source.is_some_and(|s| s.rr_client),
            target.config.route_reflector_client,
        )
    {
        return None;
    }
    if !filter_accepts(&target.config.export, prefix) {
        return None;
    }
    let mut a = (*path.attrs).clone();
    let same_family = |nh: &IpAddr| {
        matches!(
            (nh, prefix),
            (IpAddr::V4(_), Prefix::V4(..)) | (IpAddr::V6(_), Prefix::V6(..))
        )
    };
    if target.ebgp {
        a.as_path.prepend(speaker.local_as);
        let keep =
            target.config.keep_original_next_hop && a.next_hop.is_some_and(|n| same_family(&n));
        if !keep {
            a.next_hop = Some(target.self_next_hop(prefix)?);
        }
        a.local_pref = None;
        if source.is_some() {
            a.med = None;
        }
        a.originator_id = None;
        a.cluster_list.clear();
    } else {
        a.local_pref = Some(a.local_pref_or_default());
        if target.config.next_hop_self || a.next_hop.is_none() {
            a.next_hop = Some(target.self_next_hop(prefix)?);
        }
        if reflecting && let Some(s) = source {
            reflector::reflect(&mut a, s.router_id, speaker.effective_cluster_id());
        }
    }
    Some(a)
}
