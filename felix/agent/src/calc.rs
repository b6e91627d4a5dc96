//! The policy calculation: from endpoints, profiles, tiers and policies to, per local endpoint
//! and direction, the ordered tiers and policies that apply, compiled rules, and the address sets
//! the rules need. Pure; Calico's semantics:
//!
//! - Tiers by `order` (unset last) then name; the `default` tier has order 1,000,000.
//!   Policies in a tier by `order` (unset last) then name.
//! - A policy applies to an endpoint when its selector matches the endpoint's labels (a
//!   namespaced NetworkPolicy only to endpoints of its namespace) and its types include the
//!   direction. `types` unset: Ingress, plus Egress when it has egress rules.
//! - In a tier with an applicable policy: rules in order; Allow accepts, Deny drops, Pass goes to
//!   the next tier, Log logs and continues; no match in the whole tier → the tier's
//!   `defaultAction` (Deny unless Pass). After the last tier that passes, or when no tier
//!   applies: the endpoint's profiles (Kubernetes namespace profiles `kns.*` allow everything;
//!   no matching profile rule → drop).
//! - Entity rules: `nets`/`notNets`, `selector`/`notSelector` (addresses of the matching
//!   endpoints; in a namespaced policy scoped to its namespace unless `namespaceSelector`),
//!   `namespaceSelector` (over namespace names: `projectcalico.org/name`,
//!   `kubernetes.io/metadata.name`), `ports`/`notPorts` with ranges and named ports (resolved
//!   against the selected endpoints' ports), protocol and `notProtocol`, ICMP type/code,
//!   `ipVersion`.
//! - Network sets (namespaced and global) are selected by rules like endpoints on no node;
//!   `namespaceSelector: global()` selects the global ones.
//! - NAT outgoing: the pools with `natOutgoing`, and every pool (traffic between pools is
//!   never masqueraded).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use brindle_crds::policy::{Action, EntityRule, PolicyType, Rule};
use brindle_crds::{Port, Protocol};
use brindle_selector::Selector;
use ipnetwork::IpNetwork;
use serde::Serialize;

/// The order of the `default` tier.
pub const DEFAULT_TIER_ORDER: f64 = 1_000_000.0;

/// One workload endpoint, as the calculation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host side interface.
    pub iface: String,
    /// The node it runs on.
    pub node: String,
    /// Its namespace.
    pub namespace: String,
    /// Labels (the endpoint's, and its profiles' `labelsToApply`).
    pub labels: BTreeMap<String, String>,
    /// Its addresses.
    pub ips: Vec<IpNetwork>,
    /// Its profiles.
    pub profiles: Vec<String>,
    /// Named ports: name → (protocol number, port).
    pub ports: BTreeMap<String, (u8, u16)>,
}

pub use crate::inputs::{inputs_from, types_of};

/// A policy of any kind, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `<tier>/<name>` or `<tier>/<namespace>/<name>`; unique, stable.
    pub id: String,
    /// Its tier.
    pub tier: String,
    /// Its order.
    pub order: Option<f64>,
    /// The namespace of a namespaced policy.
    pub namespace: Option<String>,
    /// Which endpoints.
    pub selector: Option<String>,
    /// Directions.
    pub types: Vec<PolicyType>,
    /// Inbound rules.
    pub ingress: Vec<Rule>,
    /// Outbound rules.
    pub egress: Vec<Rule>,
    /// Host endpoint stages (GlobalNetworkPolicy only).
    pub flags: HostFlags,
}

/// Where a GlobalNetworkPolicy applies on host endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostFlags {
    /// Before DNAT (ingress only).
    pub pre_dnat: bool,
    /// Before connection tracking.
    pub do_not_track: bool,
    /// Also to traffic forwarded through the host endpoint.
    pub apply_on_forward: bool,
}

/// Everything the calculation reads.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Every endpoint of the cluster (selectors pick addresses among them).
    pub endpoints: Vec<Endpoint>,
    /// Tiers: name → (order, default action is Pass).
    pub tiers: BTreeMap<String, (Option<f64>, bool)>,
    /// Policies.
    pub policies: Vec<Policy>,
    /// Profiles: name → (ingress, egress).
    pub profiles: BTreeMap<String, (Vec<Rule>, Vec<Rule>)>,
    /// IP pools: CIDR and `natOutgoing`.
    pub pools: Vec<(IpNetwork, bool)>,
    /// Host endpoints of every node.
    pub hosts: Vec<crate::host::HostEp>,
    /// FelixConfiguration's failsafe ports, when it sets them (else Calico's defaults).
    pub failsafe: Option<crate::host::Failsafe>,
    /// This node's interfaces and their addresses (host endpoints named by address).
    pub interfaces: Vec<(String, Vec<std::net::IpAddr>)>,
}

/// NAT outgoing: traffic from the `masquerade` pools to anywhere outside `pools` (every
/// pool) leaves with the node's address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Nat {
    /// Pools with `natOutgoing`.
    pub masquerade: Vec<IpNetwork>,
    /// Every pool.
    pub pools: Vec<IpNetwork>,
}

/// Verdict of a compiled rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Accept.
    Allow,
    /// Drop.
    Deny,
    /// To the next tier.
    Pass,
    /// Log and continue.
    Log,
}

/// One side of a compiled rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Side {
    /// Address must be in one of these (nets and selector sets).
    pub nets: Vec<IpNetwork>,
    /// Address sets that must match (selector), by name.
    pub sets: Vec<String>,
    /// Address must not be in these.
    pub not_nets: Vec<IpNetwork>,
    /// Address sets that must not match (notSelector).
    pub not_sets: Vec<String>,
    /// Port ranges.
    pub ports: Vec<(u16, u16)>,
    /// Excluded port ranges.
    pub not_ports: Vec<(u16, u16)>,
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CRule {
    /// What a match does.
    pub verdict: Verdict,
    /// 4, 6 or both.
    pub ip_version: Option<u8>,
    /// Protocol number.
    pub protocol: Option<u8>,
    /// Excluded protocol number.
    pub not_protocol: Option<u8>,
    /// ICMP type and code.
    pub icmp: Option<(u8, Option<u8>)>,
    /// Source.
    pub src: Side,
    /// Destination.
    pub dst: Side,
    /// The rule can never match (e.g. a named port no endpoint has): rendered as nothing.
    pub never: bool,
}

impl CRule {
    /// Whether the rule can match IPv6 (`v6`) or IPv4 packets (its ipVersion, and ICMP
    /// protocols belong to one family each).
    pub fn in_family(&self, v6: bool) -> bool {
        let version_ok = match self.ip_version {
            Some(4) => !v6,
            Some(6) => v6,
            _ => true,
        };
        let proto_ok = match self.protocol {
            Some(1) => !v6,
            Some(58) => v6,
            _ => true,
        };
        version_ok && proto_ok
    }
}

/// A compiled policy (or profile).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CPolicy {
    /// Inbound.
    pub ingress: Vec<CRule>,
    /// Outbound.
    pub egress: Vec<CRule>,
}

/// The tiers that apply to one endpoint in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierPlan {
    /// Tier name.
    pub tier: String,
    /// Policy ids, in order.
    pub policies: Vec<String>,
    /// The tier ends with Pass (else Deny).
    pub pass_at_end: bool,
}

/// One local endpoint's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointPlan {
    /// Inbound tiers.
    pub ingress: Vec<TierPlan>,
    /// Outbound tiers.
    pub egress: Vec<TierPlan>,
    /// Profiles, in order; `kns.*` (or missing `kns.*`) allows all.
    pub profiles: Vec<String>,
}

/// The calculation's result for one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// By host interface.
    pub endpoints: BTreeMap<String, EndpointPlan>,
    /// Compiled policies used by some local endpoint.
    pub policies: BTreeMap<String, CPolicy>,
    /// Compiled profiles used by some local endpoint (`allow-all` for Kubernetes namespaces).
    pub profiles: BTreeMap<String, CPolicy>,
    /// Address sets: name → members.
    pub sets: BTreeMap<String, BTreeSet<IpNetwork>>,
    /// NAT outgoing.
    pub nat: Nat,
    /// Host endpoints of this node, by interface (`*` for all of them).
    pub hosts: BTreeMap<String, crate::host::HostPlan>,
    /// Ports host endpoint policy never blocks (with host endpoints only).
    pub failsafe: crate::host::Failsafe,
    /// What could not be compiled, and why.
    pub notes: Vec<String>,
}

fn tier_key(inp: &Inputs, tier: &str) -> (u8, u64, String) {
    let order = inp
        .tiers
        .get(tier)
        .and_then(|t| t.0)
        .or((tier == "default").then_some(DEFAULT_TIER_ORDER));
    match order {
        Some(o) => (0, o.to_bits() ^ (1 << 63), tier.to_string()),
        None => (1, 0, tier.to_string()),
    }
}

fn order_key(p: &Policy) -> (u8, u64, String) {
    match p.order {
        // Non-negative orders compare like their bit patterns with the sign bit flipped.
        Some(o) if o >= 0.0 => (0, o.to_bits() ^ (1 << 63), p.id.clone()),
        Some(o) => (0, !o.to_bits(), p.id.clone()),
        None => (1, 0, p.id.clone()),
    }
}

/// Endpoints indexed by label, so a selector with a required `key == value` (or `in`) looks
/// its candidates up instead of testing every endpoint.
pub(crate) struct Index<'a> {
    eps: &'a [Endpoint],
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
}

impl<'a> Index<'a> {
    fn new(eps: &'a [Endpoint]) -> Index<'a> {
        let mut by_label: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, e) in eps.iter().enumerate() {
            for (k, v) in &e.labels {
                by_label.entry((k, v)).or_default().push(i);
            }
        }
        Index { eps, by_label }
    }

    /// The endpoints (ascending indices) that pass `keep` and that `sel` matches.
    pub(crate) fn select(&self, sel: &Selector, keep: impl Fn(&Endpoint) -> bool) -> Vec<usize> {
        let ok = |i: &usize| keep(&self.eps[*i]) && sel.matches(&self.eps[*i].labels);
        match sel.required_values() {
            Some((k, vals)) => {
                let mut v: Vec<usize> = vals
                    .iter()
                    .filter_map(|x| self.by_label.get(&(k, *x)))
                    .flatten()
                    .copied()
                    .filter(ok)
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
            None => (0..self.eps.len()).filter(ok).collect(),
        }
    }
}

/// A policy's selector: absent or empty selects all; one that does not parse selects nothing
/// (validation rejects those before they are stored).
pub(crate) fn parse_selector(sel: Option<&str>) -> Option<Selector> {
    match sel {
        None | Some("") => Some(Selector::All),
        Some(s) => Selector::parse(s).ok(),
    }
}

fn ns_labels(ns: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("projectcalico.org/name".to_string(), ns.to_string()),
        ("kubernetes.io/metadata.name".to_string(), ns.to_string()),
    ])
}

pub(crate) struct Compiler<'a> {
    pub(crate) inp: &'a Inputs,
    index: Index<'a>,
    sets: BTreeMap<String, BTreeSet<IpNetwork>>,
    /// Entity selections already made: key → (set name, endpoints).
    selections: HashMap<String, (String, Vec<&'a Endpoint>)>,
    pub(crate) notes: Vec<String>,
}

impl<'a> Compiler<'a> {
    /// The endpoints an entity's selector picks in a policy of `scope` (namespace), and the
    /// address set of theirs; made once per distinct selection.
    fn select(
        &mut self,
        sel: &str,
        ns_sel: Option<&str>,
        scope: Option<&str>,
        negated: bool,
    ) -> (String, Vec<&'a Endpoint>) {
        let key = format!(
            "{}{sel}|{ns_sel:?}|{scope:?}",
            if negated { "not|" } else { "" }
        );
        if let Some(hit) = self.selections.get(&key) {
            return hit.clone();
        }
        let eps: Vec<&'a Endpoint> = match Selector::parse(sel) {
            Err(_) => Vec::new(),
            Ok(s) => {
                let ns_s = ns_sel.and_then(|n| Selector::parse(n).ok());
                // `global()` picks what has no namespace (global network sets); any other
                // namespace selector picks only namespaced endpoints and sets.
                let keep = |e: &Endpoint| match (&ns_s, scope) {
                    (Some(n), _) if n.is_global() => e.namespace.is_empty(),
                    (Some(n), _) => !e.namespace.is_empty() && n.matches(&ns_labels(&e.namespace)),
                    (None, Some(ns)) => e.namespace == ns,
                    (None, None) => true,
                };
                let all = self.index.eps;
                self.index
                    .select(&s, keep)
                    .into_iter()
                    .map(|i| &all[i])
                    .collect()
            }
        };
        let name = format!("s{:016x}", stable_hash(&key));
        let members: BTreeSet<IpNetwork> = eps.iter().flat_map(|e| e.ips.iter().copied()).collect();
        self.sets.insert(name.clone(), members);
        self.selections.insert(key, (name.clone(), eps.clone()));
        (name, eps)
    }

    fn side(
        &mut self,
        e: &EntityRule,
        scope: Option<&str>,
        protocol: Option<u8>,
        ctx: &str,
    ) -> (Side, bool) {
        let mut side = Side::default();
        let mut never = false;
        side.nets = e.nets.iter().filter_map(|n| n.parse().ok()).collect();
        side.not_nets = e.not_nets.iter().filter_map(|n| n.parse().ok()).collect();
        // serviceAccounts narrows the selection to endpoints running as those accounts.
        let sa = e.service_accounts.as_ref().map(|m| {
            let mut parts = Vec::new();
            if !m.names.is_empty() {
                let names: Vec<String> = m.names.iter().map(|n| format!("'{n}'")).collect();
                parts.push(format!(
                    "{} in {{{}}}",
                    crate::inputs::SA_LABEL,
                    names.join(", ")
                ));
            }
            if let Some(s) = m.selector.as_deref().filter(|s| !s.trim().is_empty()) {
                parts.push(crate::inputs::sa_selector(s).unwrap_or_else(|| "!all()".into()));
            }
            if parts.is_empty() {
                "all()".to_string()
            } else {
                parts.join(" && ")
            }
        });
        let sel = match (e.selector.clone(), sa) {
            (Some(s), Some(sa)) => Some(format!("({s}) && ({sa})")),
            (None, Some(sa)) => Some(sa),
            (s, None) => s.or_else(|| e.namespace_selector.as_ref().map(|_| "all()".into())),
        };
        let mut selected: Vec<&Endpoint> = Vec::new();
        if let Some(s) = &sel {
            let (set, eps) = self.select(s, e.namespace_selector.as_deref(), scope, false);
            selected = eps;
            side.sets.push(set);
        }
        if let Some(s) = &e.not_selector {
            let (set, _) = self.select(s, e.namespace_selector.as_deref(), scope, true);
            side.not_sets.push(set);
        }
        let mut resolve = |ports: &[Port], out: &mut Vec<(u16, u16)>| {
            for p in ports {
                match p {
                    Port::Range { first, last } => out.push((*first, *last)),
                    Port::Named(n) => {
                        // Named ports resolve against the endpoints the rule selects (or, for
                        // a destination without selector, every endpoint).
                        let pool: Vec<&Endpoint> = if sel.is_some() {
                            selected.clone()
                        } else {
                            self.inp.endpoints.iter().collect()
                        };
                        let found: BTreeSet<u16> = pool
                            .iter()
                            .filter_map(|e| e.ports.get(n))
                            .filter(|(proto, _)| protocol.is_none_or(|p| p == *proto))
                            .map(|(_, port)| *port)
                            .collect();
                        if found.is_empty() {
                            self.notes
                                .push(format!("{ctx}: named port {n:?} matches no endpoint"));
                        }
                        out.extend(found.into_iter().map(|p| (p, p)));
                    }
                }
            }
        };
        resolve(&e.ports, &mut side.ports);
        if !e.ports.is_empty() && side.ports.is_empty() {
            never = true;
        }
        resolve(&e.not_ports, &mut side.not_ports);
        if e.services.is_some() {
            self.notes.push(format!(
                "{ctx}: services matches are not supported; the rule never matches"
            ));
            never = true;
        }
        (side, never)
    }

    fn rule(&mut self, r: &Rule, scope: Option<&str>, ctx: &str) -> CRule {
        let protocol = r.protocol.as_ref().map(Protocol::number);
        let (src, n1) = self.side(&r.source, scope, protocol, ctx);
        let (dst, n2) = self.side(&r.destination, scope, protocol, ctx);
        let mut never = n1 || n2;
        if r.http.is_some() {
            self.notes.push(format!(
                "{ctx}: http matches need an L7 proxy; the rule never matches"
            ));
            never = true;
        }
        if r.not_icmp.is_some() {
            self.notes.push(format!(
                "{ctx}: notICMP is not supported; the rule never matches"
            ));
            never = true;
        }
        CRule {
            verdict: match r.action {
                Action::Allow => Verdict::Allow,
                Action::Deny => Verdict::Deny,
                Action::Pass => Verdict::Pass,
                Action::Log => Verdict::Log,
            },
            ip_version: r.ip_version,
            protocol,
            not_protocol: r.not_protocol.as_ref().map(Protocol::number),
            icmp: r.icmp.and_then(|i| i.icmp_type.map(|t| (t, i.code))),
            src,
            dst,
            never,
        }
    }

    /// Appends policy `p` to a direction's tier list (a new tier when it changes) and compiles
    /// it once.
    pub(crate) fn add_to_tiers(
        &mut self,
        out: &mut Vec<TierPlan>,
        p: &Policy,
        compiled: &mut BTreeMap<String, CPolicy>,
    ) {
        match out.last_mut() {
            Some(t) if t.tier == p.tier => t.policies.push(p.id.clone()),
            _ => out.push(TierPlan {
                tier: p.tier.clone(),
                policies: vec![p.id.clone()],
                pass_at_end: self.inp.tiers.get(&p.tier).is_some_and(|t| t.1),
            }),
        }
        if !compiled.contains_key(&p.id) {
            let cp = self.compile(&p.id, &p.ingress, &p.egress, p.namespace.as_deref());
            compiled.insert(p.id.clone(), cp);
        }
    }

    /// Compiles profile `pr` once (a missing `kns.*` profile allows all; another missing one
    /// allows nothing).
    pub(crate) fn add_profile(&mut self, pr: &str, compiled: &mut BTreeMap<String, CPolicy>) {
        if compiled.contains_key(pr) {
            return;
        }
        let cp = match self.inp.profiles.get(pr) {
            Some((i, o)) => self.compile(&format!("profile/{pr}"), i, o, None),
            None if pr.starts_with("kns.") => CPolicy {
                ingress: vec![allow_all()],
                egress: vec![allow_all()],
            },
            None => {
                self.notes.push(format!(
                    "profile {pr} does not exist: its endpoints get no profile rules (drop)"
                ));
                CPolicy::default()
            }
        };
        compiled.insert(pr.to_string(), cp);
    }

    pub(crate) fn compile(
        &mut self,
        id: &str,
        ingress: &[Rule],
        egress: &[Rule],
        scope: Option<&str>,
    ) -> CPolicy {
        CPolicy {
            ingress: ingress
                .iter()
                .enumerate()
                .map(|(i, r)| self.rule(r, scope, &format!("{id} ingress[{i}]")))
                .collect(),
            egress: egress
                .iter()
                .enumerate()
                .map(|(i, r)| self.rule(r, scope, &format!("{id} egress[{i}]")))
                .collect(),
        }
    }
}

/// A stable 64-bit FNV-1a hash (names of sets and chains must not change between runs).
pub fn stable_hash(s: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = Fnv::default();
    h.write(s.as_bytes());
    h.finish()
}

/// FNV-1a as a [`std::hash::Hasher`]: the same value in every run and on every machine (for
/// content hashes that the kernel keeps across restarts).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The plan for the endpoints of `node`.
pub fn calculate(inp: &Inputs, node: &str) -> Plan {
    let mut c = Compiler {
        inp,
        index: Index::new(&inp.endpoints),
        sets: BTreeMap::new(),
        selections: HashMap::new(),
        notes: Vec::new(),
    };
    let mut policies: Vec<&Policy> = inp.policies.iter().collect();
    policies.sort_by_cached_key(|p| (tier_key(inp, &p.tier), order_key(p)));
    // Which policies apply to each local endpoint, per direction, in policy order: each
    // policy's selector is parsed once and its candidates looked up in the label index.
    let mut applies: HashMap<usize, [Vec<usize>; 2]> = HashMap::new();
    for (rank, p) in policies.iter().enumerate() {
        // preDNAT and doNotTrack policies apply to host endpoints only.
        if p.flags.pre_dnat || p.flags.do_not_track {
            continue;
        }
        let Some(sel) = parse_selector(p.selector.as_deref()) else {
            continue;
        };
        let dirs = [
            p.types.contains(&PolicyType::Ingress),
            p.types.contains(&PolicyType::Egress),
        ];
        let keep = |e: &Endpoint| {
            e.node == node
                && !e.iface.is_empty()
                && p.namespace.as_deref().is_none_or(|ns| ns == e.namespace)
        };
        for ei in c.index.select(&sel, keep) {
            let lists = applies.entry(ei).or_default();
            for d in 0..2 {
                if dirs[d] {
                    lists[d].push(rank);
                }
            }
        }
    }
    let mut plan = Plan::default();
    for (ei, e) in inp
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| e.node == node)
    {
        let mut ep = EndpointPlan {
            profiles: e.profiles.clone(),
            ..Default::default()
        };
        let lists = applies.remove(&ei).unwrap_or_default();
        for (d, out) in [&mut ep.ingress, &mut ep.egress].into_iter().enumerate() {
            for &rank in &lists[d] {
                let p = policies[rank];
                c.add_to_tiers(out, p, &mut plan.policies);
            }
        }
        for pr in &e.profiles {
            c.add_profile(pr, &mut plan.profiles);
        }
        plan.endpoints.insert(e.iface.clone(), ep);
    }
    plan.hosts = crate::host::plan_hosts(&mut c, &policies, node, &mut plan);
    plan.failsafe = inp.failsafe.clone().unwrap_or_default();
    plan.sets = c.sets;
    plan.notes = c.notes;
    let mut pools: Vec<(IpNetwork, bool)> = inp.pools.clone();
    pools.sort();
    pools.dedup();
    plan.nat = Nat {
        masquerade: pools.iter().filter(|p| p.1).map(|p| p.0).collect(),
        pools: pools.iter().map(|p| p.0).collect(),
    };
    plan
}

fn allow_all() -> CRule {
    CRule {
        verdict: Verdict::Allow,
        ip_version: None,
        protocol: None,
        not_protocol: None,
        icmp: None,
        src: Side::default(),
        dst: Side::default(),
        never: false,
    }
}
