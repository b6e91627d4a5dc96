//! `desired_bgp(snapshot, node)`: the BGP configuration of one node, derived from the datastore
//! exactly as Calico derives it. Pure: a function of one [`Snapshot`].
//!
//! - **Mesh** (`nodeToNodeMeshEnabled`, on by default, AS 64512): every other node with a BGP
//!   address of the same family, except route reflectors (nodes with `routeReflectorClusterID`),
//!   which drop out of the mesh. Only one side of each mesh pair connects, as Calico orders
//!   them: a node is passive when the peer's address sorts after its own as text (this avoids
//!   a second connection tearing down a graceful restart in progress). Node-to-node sessions
//!   use the peer node's effective listen port.
//! - **BGPPeers** apply to the node named by `node`, the nodes matching `nodeSelector`, or every
//!   node (global). `peerIP` (with `:port` / `[v6]:port`) is one external peer (skipped when it
//!   is this node's own address); `peerSelector` peers with every matching node at its address
//!   and AS. A route reflector treats an iBGP peer outside its cluster (a node, or a peerIP peer)
//!   as a client.
//!   With `reversePeering: Auto` (default) the selected nodes get the reverse session too.
//!   Explicit peers win over the mesh for the same address.
//! - **Advertised**: each confirmed block affine to the node (blackholed locally), a host route
//!   for each address the node borrowed from another node's block, nothing from pools with
//!   `disableBGPExport`; the service CIDRs of BGPConfiguration (never blackholed); communities
//!   from `prefixAdvertisements` (names from `communities`, or literal `aa:nn` / `aa:nn:mm`).
//! - **BGPConfiguration** `default` with `node.<name>` on top.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use brindle_bgp_core::{FilterAction, FilterRule, MatchOperator, OriginAttrs};
use brindle_bgp_speaker::config::parse_prefix;
use brindle_bgp_wire::{Community, LargeCommunity, Prefix};
use brindle_crds::bgp::{
    BGPFilterRule, BindMode, NextHopMode, ReversePeering, SourceAddress, parse_peer_ip,
};
use brindle_crds::common::{BgpPassword, DEFAULT_AS_NUMBER};
use brindle_crds::ipam::AffinityState;
use brindle_crds::{BGPConfigurationSpec, BGPPeer, Node};
use brindle_selector::Selector;
use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::Error;
use crate::cache::Snapshot;

/// The default BGP port.
pub const BGP_PORT: u16 = 179;

/// Where a session comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerType {
    /// The node-to-node mesh.
    Mesh,
    /// A BGPPeer that applies to every node.
    Global,
    /// A BGPPeer for this node (`node` or `nodeSelector`).
    NodeSpecific,
}

/// How the next hop of routes sent to a peer is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NextHop {
    /// eBGP: this node; iBGP: unchanged.
    Auto,
    /// Always this node.
    #[serde(rename = "Self")]
    SelfNode,
    /// Always the original next hop.
    Keep,
}

/// Where a TCP MD5 password is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasswordSource {
    /// The Secret's name.
    pub secret: String,
    /// The key in the Secret.
    pub key: String,
}

/// One session this node should have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredPeer {
    /// The peer's address.
    pub address: IpAddr,
    /// Its TCP port.
    pub port: u16,
    /// Its AS.
    pub remote_as: u32,
    /// Mesh, global or node-specific.
    pub peer_type: PeerType,
    /// What made it: `mesh` or `BGPPeer/<name>` (reverse sessions: `BGPPeer/<name> (reverse)`).
    pub source: String,
    /// The peer node, when the peer is a node of the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_node: Option<String>,
    /// Wait for the peer to connect.
    pub passive: bool,
    /// The peer is our route reflector client.
    pub route_reflector_client: bool,
    /// The route reflector cluster id we use towards it (when it is our client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<Ipv4Addr>,
    /// TCP MD5 password source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
    /// GTSM: the peer is at most this many hops away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    /// Next-hop handling.
    pub next_hop: NextHop,
    /// Graceful restart time to advertise (seconds), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<u64>,
    /// BGPFilters, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// Our address on the session (sourceAddress UseNodeIP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_address: Option<IpAddr>,
    /// How often our AS may appear in received paths.
    pub allow_as_in: u8,
    /// Most prefixes accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prefixes: Option<u32>,
    /// Import rules from the filters.
    #[serde(skip)]
    pub import: Vec<FilterRule>,
    /// Export rules from the filters.
    #[serde(skip)]
    pub export: Vec<FilterRule>,
}

impl DesiredPeer {
    /// A session with the defaults: active, not a reflector client, no password, GTSM, filters
    /// or limits, next hop by the usual rule.
    pub fn new(
        address: IpAddr,
        remote_as: u32,
        peer_type: PeerType,
        source: String,
        source_address: Option<IpAddr>,
    ) -> DesiredPeer {
        DesiredPeer {
            address,
            port: BGP_PORT,
            remote_as,
            peer_type,
            source,
            peer_node: None,
            passive: false,
            route_reflector_client: false,
            cluster_id: None,
            password: None,
            ttl_security: None,
            next_hop: NextHop::Auto,
            max_restart_time: None,
            filters: Vec::new(),
            source_address,
            allow_as_in: 0,
            max_prefixes: None,
            import: Vec::new(),
            export: Vec::new(),
        }
    }
}

/// One prefix this node originates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredOrigin {
    /// Why: `block`, `borrowed`, `service-cluster-ip`, ...
    pub reason: String,
    /// Install a blackhole route for it (own blocks).
    pub blackhole: bool,
    /// Standard communities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Large communities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<String>,
    /// The attributes the speaker sends.
    #[serde(skip)]
    pub attrs: OriginAttrs,
}

/// The whole BGP configuration of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredBgp {
    /// The node.
    pub node: String,
    /// Our AS.
    pub local_as: u32,
    /// Our router id (the node's IPv4 address).
    pub router_id: Ipv4Addr,
    /// The node's IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<IpNetwork>,
    /// The node's IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<IpNetwork>,
    /// BGP listen port.
    pub listen_port: u16,
    /// Listen on the node's address only (bindMode NodeIP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_address: Option<IpAddr>,
    /// Our route reflector cluster id, when this node is a route reflector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    /// Interfaces whose routes are never exported.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_interfaces: Vec<String>,
    /// Sessions, by peer address.
    pub peers: BTreeMap<IpAddr, DesiredPeer>,
    /// Originated prefixes.
    #[serde(serialize_with = "by_prefix_string")]
    pub originate: BTreeMap<Prefix, DesiredOrigin>,
    /// Things left out, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn by_prefix_string<S: serde::Serializer>(
    m: &BTreeMap<Prefix, DesiredOrigin>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(p, o)| (p.to_string(), o)))
}

/// The effective BGPConfiguration for a node: `default`, with `node.<name>` on top.
pub fn effective_config(snap: &Snapshot, node: &str) -> BGPConfigurationSpec {
    let mut c = snap
        .bgp_configuration("default")
        .map(|c| c.spec.clone())
        .unwrap_or_else(empty_config);
    if let Some(o) = snap.bgp_configuration(&format!("node.{node}")) {
        let o = &o.spec;
        macro_rules! over {
            ($($f:ident),*) => { $( if o.$f.is_some() { c.$f = o.$f.clone(); } )* };
        }
        over!(
            log_severity_screen,
            listen_port,
            bind_mode,
            node_mesh_password,
            node_mesh_max_restart_time
        );
        if !o.ignored_interfaces.is_empty() {
            c.ignored_interfaces = o.ignored_interfaces.clone();
        }
        if !o.communities.is_empty() {
            c.communities = o.communities.clone();
        }
        if !o.prefix_advertisements.is_empty() {
            c.prefix_advertisements = o.prefix_advertisements.clone();
        }
    }
    c
}

fn empty_config() -> BGPConfigurationSpec {
    serde_json::from_value(serde_json::json!({})).unwrap_or_else(|_| unreachable_config())
}

#[allow(clippy::panic)]
fn unreachable_config() -> BGPConfigurationSpec {
    panic!("an empty BGPConfigurationSpec always decodes")
}

fn node_name(n: &Node) -> &str {
    n.metadata.name.as_deref().unwrap_or_default()
}

fn labels(n: &Node) -> BTreeMap<String, String> {
    n.metadata.labels.clone().unwrap_or_default()
}

/// A node's addresses (IPv4, IPv6) from `spec.bgp`.
pub fn node_addrs(n: &Node) -> (Option<IpNetwork>, Option<IpNetwork>) {
    let bgp = n.spec.bgp.as_ref();
    let p = |s: Option<&String>| s.and_then(|s| s.parse::<IpNetwork>().ok());
    (
        p(bgp.and_then(|b| b.ipv4_address.as_ref())),
        p(bgp.and_then(|b| b.ipv6_address.as_ref())),
    )
}

fn cluster_id(n: &Node) -> Option<Ipv4Addr> {
    n.spec
        .bgp
        .as_ref()
        .and_then(|b| b.route_reflector_cluster_id.as_ref())
        .and_then(|c| c.parse().ok())
}

fn password(p: &Option<BgpPassword>) -> Option<PasswordSource> {
    p.as_ref()
        .and_then(|p| p.secret_key_ref.as_ref())
        .map(|r| PasswordSource {
            secret: r.name.clone(),
            key: r.key.clone(),
        })
}

fn seconds(d: &Option<String>) -> Option<u64> {
    d.as_deref()
        .and_then(|d| brindle_crds::validate::parse_duration(d).ok())
        .map(|d| d.as_secs())
}

fn selector_matches(sel: &str, n: &Node) -> bool {
    Selector::parse(sel).is_ok_and(|s| s.matches(&labels(n)))
}

/// Does the BGPPeer apply to node `n` (its `node` / `nodeSelector`, or every node)?
fn applies_to(p: &BGPPeer, n: &Node) -> bool {
    match (&p.spec.node, &p.spec.node_selector) {
        (Some(name), _) => name == node_name(n),
        (None, Some(sel)) => selector_matches(sel, n),
        (None, None) => true,
    }
}

fn peer_type(p: &BGPPeer) -> PeerType {
    if p.spec.node.is_some() || p.spec.node_selector.is_some() {
        PeerType::NodeSpecific
    } else {
        PeerType::Global
    }
}

fn next_hop(p: &BGPPeer) -> NextHop {
    match p.spec.next_hop_mode {
        Some(NextHopMode::SelfNode) => NextHop::SelfNode,
        Some(NextHopMode::Keep) => NextHop::Keep,
        _ if p.spec.keep_original_next_hop => NextHop::Keep,
        _ => NextHop::Auto,
    }
}

/// BGPFilter rules of one family as core filter rules. A rule without a CIDR matches every
/// prefix of its family, so it becomes an `In 0.0.0.0/0` (`::/0`) rule.
pub fn filter_rules(rules: &[BGPFilterRule], v4: bool) -> Vec<FilterRule> {
    let all = if v4 {
        Prefix::v4(Ipv4Addr::UNSPECIFIED, 0)
    } else {
        Prefix::v6(std::net::Ipv6Addr::UNSPECIFIED, 0)
    };
    rules
        .iter()
        .filter_map(|r| {
            let action = match r.action {
                brindle_crds::bgp::FilterAction::Accept => FilterAction::Accept,
                brindle_crds::bgp::FilterAction::Reject => FilterAction::Reject,
            };
            let op = match r.match_operator {
                Some(brindle_crds::bgp::MatchOperator::Equal) => MatchOperator::Equal,
                Some(brindle_crds::bgp::MatchOperator::NotEqual) => MatchOperator::NotEqual,
                Some(brindle_crds::bgp::MatchOperator::NotIn) => MatchOperator::NotIn,
                _ => MatchOperator::In,
            };
            let cidr = match &r.cidr {
                Some(c) => (parse_prefix(c).ok()?, op),
                None => (all?, MatchOperator::In),
            };
            let (min, max) = r
                .prefix_length
                .map(|l| (l.min, l.max))
                .unwrap_or((None, None));
            Some(FilterRule::cidr(action, cidr.0, cidr.1).with_len(min, max))
        })
        .collect()
}

/// Everything the speaker needs from the node resource and the configuration.
struct Local<'a> {
    name: &'a str,
    v4: Option<IpNetwork>,
    v6: Option<IpNetwork>,
    local_as: u32,
    cluster_id: Option<Ipv4Addr>,
}

fn as_of(n: &Node, default_as: u32) -> u32 {
    n.spec
        .bgp
        .as_ref()
        .and_then(|b| b.as_number)
        .map(|a| a.0)
        .unwrap_or(default_as)
}

/// Insert unless a higher-priority source already has this address (explicit BGPPeers win
/// over the mesh; among BGPPeers the first by name wins).
fn insert(peers: &mut BTreeMap<IpAddr, DesiredPeer>, p: DesiredPeer, notes: &mut Vec<String>) {
    match peers.get(&p.address) {
        Some(old) if old.peer_type != PeerType::Mesh || p.peer_type == PeerType::Mesh => {
            notes.push(format!(
                "{} from {} is already configured by {}",
                p.address, p.source, old.source
            ));
        }
        _ => {
            peers.insert(p.address, p);
        }
    }
}

/// The node-to-node session towards `other` (mesh or selector peering), or None when the
/// two share no address family.
fn node_peer(
    snap: &Snapshot,
    local: &Local,
    other: &Node,
    default_as: u32,
    peer_type: PeerType,
    source: String,
) -> Vec<DesiredPeer> {
    let (o4, o6) = node_addrs(other);
    let other_cluster = cluster_id(other);
    let remote_as = as_of(other, default_as);
    // A client of ours: an iBGP peer outside our route reflector cluster (Calico's rule).
    let rr_client = local.cluster_id.is_some()
        && other_cluster != local.cluster_id
        && remote_as == local.local_as;
    // The other node listens on its own effective port (`node.<name>` may change it).
    let port = effective_config(snap, node_name(other))
        .listen_port
        .unwrap_or(BGP_PORT);
    let mut out = Vec::new();
    for (mine, theirs) in [(local.v4, o4), (local.v6, o6)] {
        let (Some(mine), Some(theirs)) = (mine, theirs) else {
            continue;
        };
        let mut d = DesiredPeer::new(
            theirs.ip(),
            remote_as,
            peer_type,
            source.clone(),
            Some(mine.ip()),
        );
        d.port = port;
        d.peer_node = Some(node_name(other).to_string());
        // In the mesh one side of each pair connects, as Calico orders them (compat with Calico
        // nodes): a node waits when the peer's address sorts after its own, as text.
        d.passive = peer_type == PeerType::Mesh && theirs.ip().to_string() > mine.ip().to_string();
        d.route_reflector_client = rr_client;
        d.cluster_id = if rr_client { local.cluster_id } else { None };
        out.push(d);
    }
    out
}

/// Applies a BGPPeer's session settings to a derived session.
fn with_peer_settings(
    snap: &Snapshot,
    mut d: DesiredPeer,
    p: &BGPPeer,
    notes: &mut Vec<String>,
) -> DesiredPeer {
    let s = &p.spec;
    d.password = password(&s.password);
    d.ttl_security = s.ttl_security;
    d.next_hop = next_hop(p);
    d.max_restart_time = seconds(&s.max_restart_time);
    d.allow_as_in = s.num_allowed_local_as_numbers.unwrap_or(0).min(10) as u8;
    d.max_prefixes = s.max_prefixes;
    if s.source_address == SourceAddress::None {
        d.source_address = None;
    }
    d.filters = s.filters.clone();
    let v4 = d.address.is_ipv4();
    for f in &s.filters {
        match snap.filter(f) {
            Some(f) => {
                let fs = &f.spec;
                let (imp, exp) = if v4 {
                    (&fs.import_v4, &fs.export_v4)
                } else {
                    (&fs.import_v6, &fs.export_v6)
                };
                d.import.extend(filter_rules(imp, v4));
                d.export.extend(filter_rules(exp, v4));
            }
            None => notes.push(format!(
                "{}: BGPFilter {f:?} does not exist (ignored until it does)",
                d.source
            )),
        }
    }
    d
}

/// The BGP configuration of node `name`.
pub fn desired_bgp(snap: &Snapshot, name: &str) -> Result<DesiredBgp, Error> {
    let node = snap.node(name).ok_or_else(|| Error::Config {
        field: format!("Node/{name}"),
        reason: "does not exist (brindle-node registers it at start)".into(),
    })?;
    let cfg = effective_config(snap, name);
    let default_as = cfg.as_number.unwrap_or(DEFAULT_AS_NUMBER).0;
    let (v4, v6) = node_addrs(node);
    let router_id = match v4.map(|n| n.ip()) {
        Some(IpAddr::V4(a)) => a,
        _ => {
            return Err(Error::Config {
                field: format!("Node/{name}.spec.bgp.ipv4Address"),
                reason: "needed as the BGP router id".into(),
            });
        }
    };
    let local = Local {
        name,
        v4,
        v6,
        local_as: as_of(node, default_as),
        cluster_id: cluster_id(node),
    };
    let mut notes = Vec::new();
    let mut peers = BTreeMap::new();
    let mut others: Vec<&Node> = snap.nodes().filter(|n| node_name(n) != name).collect();
    others.sort_by_key(|n| node_name(n).to_string());

    // Explicit BGPPeers first (they win over the mesh), in name order.
    let mut bgp_peers: Vec<&BGPPeer> = snap.peers().collect();
    bgp_peers.sort_by_key(|p| p.metadata.name.clone());
    for p in &bgp_peers {
        let pname = p.metadata.name.as_deref().unwrap_or_default();
        let source = format!("BGPPeer/{pname}");
        if applies_to(p, node) {
            if let Some(ip) = &p.spec.peer_ip {
                let Ok((addr, port)) = parse_peer_ip(ip) else {
                    notes.push(format!("{source}: bad peerIP {ip:?}"));
                    continue;
                };
                if Some(addr) == v4.map(|n| n.ip()) || Some(addr) == v6.map(|n| n.ip()) {
                    notes.push(format!(
                        "{source}: {addr} is this node's own address; skipped"
                    ));
                    continue;
                }
                let mine = if addr.is_ipv4() { v4 } else { v6 };
                let Some(mine) = mine else {
                    notes.push(format!(
                        "{source}: this node has no address of {addr}'s family"
                    ));
                    continue;
                };
                let mut d = DesiredPeer::new(
                    addr,
                    p.spec.as_number.map(|a| a.0).unwrap_or(local.local_as),
                    peer_type(p),
                    source.clone(),
                    Some(mine.ip()),
                );
                d.port = port.unwrap_or(BGP_PORT);
                // A route reflector reflects to every iBGP peerIP peer (cluster id empty).
                if local.cluster_id.is_some() && d.remote_as == local.local_as {
                    d.route_reflector_client = true;
                    d.cluster_id = local.cluster_id;
                }
                let d = with_peer_settings(snap, d, p, &mut notes);
                insert(&mut peers, d, &mut notes);
            }
            if let Some(sel) = &p.spec.peer_selector {
                for o in others.iter().filter(|o| selector_matches(sel, o)) {
                    for d in node_peer(snap, &local, o, default_as, peer_type(p), source.clone()) {
                        let d = with_peer_settings(snap, d, p, &mut notes);
                        insert(&mut peers, d, &mut notes);
                    }
                }
            }
        }
        // The reverse side: we are selected by peerSelector, so we peer with the nodes the
        // BGPPeer applies to.
        if let Some(sel) = &p.spec.peer_selector
            && p.spec.reverse_peering.unwrap_or_default() == ReversePeering::Auto
            && selector_matches(sel, node)
        {
            for o in others.iter().filter(|o| applies_to(p, o)) {
                let src = format!("{source} (reverse)");
                for d in node_peer(snap, &local, o, default_as, peer_type(p), src) {
                    let d = with_peer_settings(snap, d, p, &mut notes);
                    insert(&mut peers, d, &mut notes);
                }
            }
        }
    }

    // The mesh.
    let mesh_on = cfg.node_to_node_mesh_enabled.unwrap_or(true);
    if mesh_on && local.cluster_id.is_none() {
        for o in others.iter().filter(|o| cluster_id(o).is_none()) {
            for mut d in node_peer(snap, &local, o, default_as, PeerType::Mesh, "mesh".into()) {
                d.password = password(&cfg.node_mesh_password);
                d.max_restart_time = seconds(&cfg.node_mesh_max_restart_time);
                insert(&mut peers, d, &mut notes);
            }
        }
    } else if mesh_on {
        notes.push(format!(
            "{} is a route reflector: not in the node-to-node mesh",
            local.name
        ));
    }

    let originate = originated(snap, &local, &cfg, &mut notes);
    Ok(DesiredBgp {
        node: name.to_string(),
        local_as: local.local_as,
        router_id,
        ipv4_address: v4,
        ipv6_address: v6,
        listen_port: cfg.listen_port.unwrap_or(BGP_PORT),
        listen_address: (cfg.bind_mode == Some(BindMode::NodeIP)).then_some(IpAddr::V4(router_id)),
        route_reflector_cluster_id: local.cluster_id,
        ignored_interfaces: cfg.ignored_interfaces.clone(),
        peers,
        originate,
        notes,
    })
}

fn to_prefix(n: &IpNetwork) -> Option<Prefix> {
    match n {
        IpNetwork::V4(v) => Prefix::v4(v.network(), v.prefix()),
        IpNetwork::V6(v) => Prefix::v6(v.network(), v.prefix()),
    }
}

fn prefix_net(p: &Prefix) -> Option<IpNetwork> {
    match p {
        Prefix::V4(a, l) => IpNetwork::new(IpAddr::V4(*a), *l).ok(),
        Prefix::V6(a, l) => IpNetwork::new(IpAddr::V6(*a), *l).ok(),
    }
}

/// The prefixes node `local` originates, with their communities.
fn originated(
    snap: &Snapshot,
    local: &Local,
    cfg: &BGPConfigurationSpec,
    notes: &mut Vec<String>,
) -> BTreeMap<Prefix, DesiredOrigin> {
    let host = format!("host:{}", local.name);
    let pools: Vec<(IpNetwork, bool)> = snap
        .pools()
        .filter_map(|p| Some((p.spec.network()?, p.spec.disable_bgp_export)))
        .collect();
    let exported = |n: &IpNetwork| {
        pools
            .iter()
            .find(|(p, _)| p.contains(n.network()))
            .is_some_and(|(_, off)| !off)
    };
    let confirmed: std::collections::BTreeSet<&str> = snap
        .affinities()
        .filter(|a| a.spec.node == local.name && a.spec.state == AffinityState::Confirmed)
        .map(|a| a.spec.cidr.as_str())
        .collect();
    let mut out: BTreeMap<Prefix, (String, bool)> = BTreeMap::new();
    for b in snap.blocks() {
        let Ok(net) = b.spec.cidr.parse::<IpNetwork>() else {
            continue;
        };
        if b.spec.affinity.as_deref() == Some(host.as_str()) {
            if !confirmed.contains(b.spec.cidr.as_str()) {
                continue;
            }
            if !exported(&net) {
                notes.push(format!("block {net}: its pool has disableBGPExport"));
                continue;
            }
            if let Some(p) = to_prefix(&net) {
                out.insert(p, ("block".into(), true));
            }
        } else {
            // Addresses this node borrowed from another node's block: host routes.
            let net_c = net;
            for (ip, a) in brindle_ipam::block::allocations(&b.spec, &net_c) {
                if a.secondary
                    .get(brindle_ipam::attr::NODE)
                    .map(String::as_str)
                    == Some(local.name)
                    && exported(&net_c)
                {
                    let len = if ip.is_ipv4() { 32 } else { 128 };
                    if let Some(p) = IpNetwork::new(ip, len).ok().as_ref().and_then(to_prefix) {
                        out.insert(p, ("borrowed".into(), false));
                    }
                }
            }
        }
    }
    for (list, why) in [
        (&cfg.service_cluster_ips, "service-cluster-ip"),
        (&cfg.service_external_ips, "service-external-ip"),
        (&cfg.service_load_balancer_ips, "service-load-balancer-ip"),
    ] {
        for c in list {
            match parse_prefix(&c.cidr) {
                Ok(p) => {
                    out.entry(p).or_insert((why.into(), false));
                }
                Err(e) => notes.push(format!("{why} {:?}: {e}", c.cidr)),
            }
        }
    }
    out.into_iter()
        .map(|(p, (reason, blackhole))| {
            let (communities, large) = communities_for(cfg, &p, notes);
            let attrs = OriginAttrs {
                communities: communities.clone(),
                large_communities: large.clone(),
                ..OriginAttrs::default()
            };
            (
                p,
                DesiredOrigin {
                    reason,
                    blackhole,
                    communities: communities.iter().map(fmt_community).collect(),
                    large_communities: large.iter().map(|l| l.to_string()).collect(),
                    attrs,
                },
            )
        })
        .collect()
}

fn fmt_community(c: &Community) -> String {
    format!("{}:{}", c.0 >> 16, c.0 & 0xffff)
}

/// Parses `aa:nn` or `aa:nn:mm`.
pub fn parse_community(s: &str) -> Option<Result<Community, LargeCommunity>> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [a, n] => {
            let a: u16 = a.parse().ok()?;
            let n: u16 = n.parse().ok()?;
            Some(Ok(Community((u32::from(a) << 16) | u32::from(n))))
        }
        [a, b, c] => Some(Err(LargeCommunity {
            global_admin: a.parse().ok()?,
            local_data1: b.parse().ok()?,
            local_data2: c.parse().ok()?,
        })),
        _ => None,
    }
}

fn communities_for(
    cfg: &BGPConfigurationSpec,
    p: &Prefix,
    notes: &mut Vec<String>,
) -> (Vec<Community>, Vec<LargeCommunity>) {
    let mut std_c = Vec::new();
    let mut large = Vec::new();
    let Some(pnet) = prefix_net(p) else {
        return (std_c, large);
    };
    for adv in &cfg.prefix_advertisements {
        let Ok(cidr) = adv.cidr.parse::<IpNetwork>() else {
            continue;
        };
        if cidr.is_ipv4() != pnet.is_ipv4()
            || !cidr.contains(pnet.network())
            || cidr.prefix() > pnet.prefix()
        {
            continue;
        }
        for c in &adv.communities {
            let value = cfg
                .communities
                .iter()
                .find(|n| &n.name == c)
                .map(|n| n.value.as_str())
                .unwrap_or(c);
            match parse_community(value) {
                Some(Ok(v)) => std_c.push(v),
                Some(Err(l)) => large.push(l),
                None => notes.push(format!(
                    "community {c:?} for {}: not aa:nn or aa:nn:mm",
                    adv.cidr
                )),
            }
        }
    }
    std_c.sort();
    std_c.dedup();
    large.sort();
    large.dedup();
    (std_c, large)
}
