//! The nftables renderer: a [`Plan`] to Brindle's table (`inet brindle`) as named sets and
//! chains, printed either as one `nft -f` script that creates the whole table or as the
//! script that turns the table last applied into this one (only the sets and chains that
//! changed, in one transaction). Pure and deterministic (golden-tested).
//!
//! ```text
//! forward/input (base chains): established → accept; invalid → drop;
//!   iifname vmap { caliX : jump from-caliX } ; unknown cali* → drop      (egress of the sender)
//!   oifname vmap { caliY : jump to-caliY }   ; unknown cali* → drop      (ingress of the receiver)
//! to-caliY: per tier: jump t-to-caliY-N; accepted → return; passed → next tier;
//!           then the profiles; nothing accepted → drop
//! t-…:      jump each policy's chain; accepted or passed → return; end of tier → drop (or pass)
//! p-<hash>-i/-e (one per policy and direction, shared by endpoints): rules → accept mark,
//!           drop, pass mark, or log
//! ```
//! Marks: 0x10000 accepted, 0x20000 passed. Every rule carries a counter and a comment naming
//! the policy and rule index. Address sets are named sets `s<hash>-4` / `s<hash>-6`, made only
//! for a family in which they have members (a rule whose selector matches no address of a
//! family is left out of that family). The chain `marker` holds one rule whose comment carries
//! the content hash.

use std::collections::BTreeSet;
use std::fmt::Write;

use ipnetwork::IpNetwork;

use std::hash::{Hash, Hasher};

use crate::calc::{CPolicy, CRule, Fnv, Plan, Side, Verdict, stable_hash};

/// Brindle's table.
pub const TABLE: &str = "brindle";
/// The interface prefix of workloads.
pub const WORKLOAD_PREFIX: &str = "cali";
pub(crate) const ACCEPT: &str = "0x00010000";
const PASS: &str = "0x00020000";
pub(crate) const CLEAR: &str = "0xfffcffff";
const CLEAR_PASS: &str = "0xfffdffff";

fn chain_id(s: &str) -> String {
    format!("{:012x}", stable_hash(s) & 0xffff_ffff_ffff)
}

fn policy_chain(id: &str, ingress: bool) -> String {
    format!("p-{}-{}", chain_id(id), if ingress { "i" } else { "e" })
}

fn profile_chain(name: &str, ingress: bool) -> String {
    format!("pr-{}-{}", chain_id(name), if ingress { "i" } else { "e" })
}

pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', ""))
}

/// Drops networks contained in another of the list (interval sets refuse overlaps).
pub(crate) fn minimal(nets: impl Iterator<Item = IpNetwork>) -> Vec<IpNetwork> {
    let all: BTreeSet<IpNetwork> = nets.collect();
    all.iter()
        .filter(|n| {
            !all.iter()
                .any(|m| m != *n && m.prefix() < n.prefix() && m.contains(n.network()))
        })
        .copied()
        .collect()
}

fn elements(nets: &[IpNetwork]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn ports(p: &[(u16, u16)]) -> String {
    p.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether address set `name` has members of the family.
fn has_members(sets: &Sets, name: &str, v6: bool) -> bool {
    sets.get(name)
        .is_some_and(|m| m.iter().any(|n| n.is_ipv6() == v6))
}

type Sets = std::collections::BTreeMap<String, BTreeSet<IpNetwork>>;

/// The matches of one side for one family; None when the side cannot match in this family.
fn side(s: &Side, saddr: bool, v6: bool, sets: &Sets) -> Option<String> {
    let (fam, fam_s) = if v6 { ("ip6", "6") } else { ("ip", "4") };
    let field = if saddr { "saddr" } else { "daddr" };
    let mut m = String::new();
    let nets = minimal(s.nets.iter().copied().filter(|n| n.is_ipv6() == v6));
    if !s.nets.is_empty() {
        if nets.is_empty() {
            return None;
        }
        let _ = write!(m, "{fam} {field} {{ {} }} ", elements(&nets));
    }
    for set in &s.sets {
        if !has_members(sets, set, v6) {
            return None;
        }
        let _ = write!(m, "{fam} {field} @{set}-{fam_s} ");
    }
    let not = minimal(s.not_nets.iter().copied().filter(|n| n.is_ipv6() == v6));
    if !not.is_empty() {
        let _ = write!(m, "{fam} {field} != {{ {} }} ", elements(&not));
    }
    for set in s.not_sets.iter().filter(|n| has_members(sets, n, v6)) {
        let _ = write!(m, "{fam} {field} != @{set}-{fam_s} ");
    }
    let pf = if saddr { "sport" } else { "dport" };
    if !s.ports.is_empty() {
        let _ = write!(m, "th {pf} {{ {} }} ", ports(&s.ports));
    }
    if !s.not_ports.is_empty() {
        let _ = write!(m, "th {pf} != {{ {} }} ", ports(&s.not_ports));
    }
    Some(m)
}

/// One compiled rule's nft rules (one per family it can match in).
fn rule(out: &mut Vec<String>, r: &CRule, comment: &str, sets: &Sets) {
    if r.never {
        return;
    }
    for v6 in [false, true] {
        if !r.in_family(v6) {
            continue;
        }
        let (Some(src), Some(dst)) = (side(&r.src, true, v6, sets), side(&r.dst, false, v6, sets))
        else {
            continue;
        };
        let mut m = format!("meta nfproto {} ", if v6 { "ipv6" } else { "ipv4" });
        if let Some(p) = r.protocol {
            let _ = write!(m, "meta l4proto {p} ");
        }
        if let Some(p) = r.not_protocol {
            let _ = write!(m, "meta l4proto != {p} ");
        }
        m.push_str(&src);
        m.push_str(&dst);
        if let Some((t, code)) = r.icmp {
            let f = if v6 { "icmpv6" } else { "icmp" };
            let _ = write!(m, "{f} type {t} ");
            if let Some(c) = code {
                let _ = write!(m, "{f} code {c} ");
            }
        }
        let verdict = match r.verdict {
            Verdict::Allow => format!("meta mark set meta mark | {ACCEPT} return"),
            Verdict::Deny => "drop".to_string(),
            Verdict::Pass => format!("meta mark set meta mark | {PASS} return"),
            Verdict::Log => format!(
                "log prefix {} level info",
                quote(&format!("brindle {comment}: "))
            ),
        };
        out.push(format!("{m}counter {verdict} comment {}", quote(comment)));
    }
}

/// A chain: its base-chain declaration (hook and policy), if any, and its rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Chain {
    /// `type filter hook … ; policy …;` for a base chain.
    pub head: Option<String>,
    /// Rules, in order.
    pub rules: Vec<String>,
}

/// Brindle's table, structured: sets and chains in an order in which every jump goes to a
/// chain declared before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Named sets: name → (element type, elements).
    pub sets: Vec<(String, &'static str, Vec<IpNetwork>)>,
    /// Chains by name.
    pub chains: Vec<(String, Chain)>,
    /// The content hash (in the `marker` chain's comment).
    pub hash: String,
}

fn set_text(out: &mut String, name: &str, ty: &str, members: &[IpNetwork]) {
    let _ = writeln!(out, "  set {name} {{\n    type {ty}\n    flags interval");
    if !members.is_empty() {
        let _ = writeln!(out, "    elements = {{ {} }}", elements(members));
    }
    let _ = writeln!(out, "  }}");
}

fn chain_text(out: &mut String, name: &str, c: &Chain) {
    let _ = writeln!(out, "  chain {name} {{");
    if let Some(h) = &c.head {
        let _ = writeln!(out, "    {h}");
    }
    for r in &c.rules {
        let _ = writeln!(out, "    {r}");
    }
    let _ = writeln!(out, "  }}");
}

impl Table {
    fn marker(&self) -> Chain {
        Chain {
            head: None,
            rules: vec![format!("counter comment \"brindle {}\"", self.hash)],
        }
    }

    /// The whole table as one script (what a first apply writes after deleting the table).
    pub fn text(&self) -> String {
        let mut out = format!("table inet {TABLE} {{\n");
        for (name, ty, m) in &self.sets {
            set_text(&mut out, name, ty, m);
        }
        for (name, c) in &self.chains {
            chain_text(&mut out, name, c);
        }
        chain_text(&mut out, "marker", &self.marker());
        out.push_str("}\n");
        out
    }

    /// The script that turns `old` (as applied) into this table in one transaction: new
    /// sets and chains declared, changed sets refilled, changed chains flushed and refilled,
    /// then chains and sets no longer wanted deleted (after the chains that jumped to them
    /// were refilled).
    pub fn update_from(&self, old: &Table) -> String {
        use std::collections::BTreeMap;
        let old_sets: BTreeMap<&str, (&str, &Vec<IpNetwork>)> = old
            .sets
            .iter()
            .map(|(n, t, m)| (n.as_str(), (*t, m)))
            .collect();
        let old_chains: BTreeMap<&str, &Chain> =
            old.chains.iter().map(|(n, c)| (n.as_str(), c)).collect();
        let new_sets: BTreeSet<&str> = self.sets.iter().map(|(n, _, _)| n.as_str()).collect();
        let new_chains: BTreeSet<&str> = self.chains.iter().map(|(n, _)| n.as_str()).collect();
        let mut out = String::new();
        let mut block = String::new();
        for (name, ty, m) in &self.sets {
            match old_sets.get(name.as_str()) {
                None => set_text(&mut block, name, ty, m),
                Some((_, om)) if *om != m => {
                    let _ = writeln!(out, "flush set inet {TABLE} {name}");
                    if !m.is_empty() {
                        let _ =
                            writeln!(out, "add element inet {TABLE} {name} {{ {} }}", elements(m));
                    }
                }
                Some(_) => {}
            }
        }
        // Declare every new chain first (empty), so refilled chains can jump to them.
        for (name, c) in &self.chains {
            if !old_chains.contains_key(name.as_str()) {
                chain_text(
                    &mut block,
                    name,
                    &Chain {
                        head: c.head.clone(),
                        rules: Vec::new(),
                    },
                );
            }
        }
        let mut fill = String::new();
        for (name, c) in self
            .chains
            .iter()
            .map(|(n, c)| (n.as_str(), c.clone()))
            .chain([("marker", self.marker())])
        {
            let before = if name == "marker" {
                Some(old.marker())
            } else {
                old_chains.get(name).map(|c| (*c).clone())
            };
            match before {
                Some(b) if b.rules == c.rules => continue,
                Some(_) => {
                    let _ = writeln!(out, "flush chain inet {TABLE} {name}");
                }
                None => {}
            }
            if !c.rules.is_empty() {
                chain_text(
                    &mut fill,
                    name,
                    &Chain {
                        head: None,
                        rules: c.rules.clone(),
                    },
                );
            }
        }
        if !block.is_empty() || !fill.is_empty() {
            let _ = write!(out, "table inet {TABLE} {{\n{block}{fill}}}\n");
        }
        for (name, _) in old.chains.iter().rev() {
            if !new_chains.contains(name.as_str()) {
                let _ = writeln!(out, "flush chain inet {TABLE} {name}");
            }
        }
        for (name, _) in old.chains.iter().rev() {
            if !new_chains.contains(name.as_str()) {
                let _ = writeln!(out, "delete chain inet {TABLE} {name}");
            }
        }
        for (name, _, _) in &old.sets {
            if !new_sets.contains(name.as_str()) {
                let _ = writeln!(out, "delete set inet {TABLE} {name}");
            }
        }
        out
    }
}

fn policy_chains(
    out: &mut Vec<(String, Chain)>,
    name: &dyn Fn(bool) -> String,
    label: &str,
    p: &CPolicy,
    sets: &Sets,
) {
    for (ingress, rules) in [(true, &p.ingress), (false, &p.egress)] {
        let mut c = Chain::default();
        for (i, r) in rules.iter().enumerate() {
            let dir = if ingress { "ingress" } else { "egress" };
            rule(&mut c.rules, r, &format!("{label} {dir}[{i}]"), sets);
        }
        out.push((name(ingress), c));
    }
}

/// NAT outgoing: a `nat-out` chain on the postrouting hook masquerading traffic from the
/// `natOutgoing` pools (set `masq-pools-<family>`) to anywhere outside every pool
/// (`all-pools-<family>`); nothing when no pool asks for it.
fn nat(plan: &Plan, t: &mut Table) {
    let mut rules = Vec::new();
    for v6 in [false, true] {
        let fam = |n: &&IpNetwork| n.is_ipv6() == v6;
        let masq = minimal(plan.nat.masquerade.iter().filter(fam).copied());
        if masq.is_empty() {
            continue;
        }
        let pools = minimal(plan.nat.pools.iter().filter(fam).copied());
        let (ty, f, ip) = if v6 {
            ("ipv6_addr", 6, "ip6")
        } else {
            ("ipv4_addr", 4, "ip")
        };
        t.sets.push((format!("masq-pools-{f}"), ty, masq));
        t.sets.push((format!("all-pools-{f}"), ty, pools));
        rules.push(format!(
            "{ip} saddr @masq-pools-{f} {ip} daddr != @all-pools-{f} counter masquerade comment \"nat outgoing\""
        ));
    }
    if !rules.is_empty() {
        t.chains.push((
            "nat-out".to_string(),
            Chain {
                head: Some("type nat hook postrouting priority srcnat; policy accept;".into()),
                rules,
            },
        ));
    }
}

/// How an endpoint chain ends when nothing allowed the packet.
#[derive(Debug, Clone, Copy)]
pub(crate) enum End<'a> {
    /// Drop, with this comment; a tier with no verdict drops too.
    Drop(&'a str),
    /// Return without a verdict (the early stages: preDNAT, doNotTrack); a tier with no
    /// verdict ends the stage.
    Return,
}

/// The chain `epc` (and its tier chains `t-<epc>-<n>`) for one endpoint and direction: each
/// tier in order (accepted → return; passed → next tier), then the profiles, then `end`.
pub(crate) fn endpoint_chains(
    chains: &mut Vec<(String, Chain)>,
    epc: &str,
    tiers: &[crate::calc::TierPlan],
    profiles: &[String],
    ingress: bool,
    end: End,
) {
    for (n, tier) in tiers.iter().enumerate() {
        let mut c = Chain::default();
        for pid in &tier.policies {
            c.rules.push(format!("jump {}", policy_chain(pid, ingress)));
            c.rules
                .push("meta mark & 0x00030000 != 0 return".to_string());
        }
        if tier.pass_at_end {
            c.rules
                .push(format!("meta mark set meta mark | {PASS} return"));
        } else if let End::Drop(_) = end {
            c.rules.push(format!(
                "counter drop comment {}",
                quote(&format!("end of tier {}", tier.tier))
            ));
        }
        chains.push((format!("t-{epc}-{n}"), c));
    }
    let mut c = Chain::default();
    c.rules.push(format!("meta mark set meta mark & {CLEAR}"));
    let jumps = (0..tiers.len())
        .map(|n| format!("t-{epc}-{n}"))
        .chain(profiles.iter().map(|pr| profile_chain(pr, ingress)));
    for target in jumps {
        c.rules.push(format!("jump {target}"));
        c.rules.push(format!("meta mark & {ACCEPT} != 0 return"));
        if let End::Return = end {
            c.rules.push(format!("meta mark & {PASS} == 0 return"));
        }
        c.rules
            .push(format!("meta mark set meta mark & {CLEAR_PASS}"));
    }
    if let End::Drop(what) = end {
        c.rules
            .push(format!("counter drop comment {}", quote(what)));
    }
    chains.push((epc.to_string(), c));
}

/// Renders the table.
pub fn render(plan: &Plan) -> Table {
    let mut t = Table::default();
    for (name, members) in &plan.sets {
        for v6 in [false, true] {
            let m = minimal(members.iter().copied().filter(|n| n.is_ipv6() == v6));
            if m.is_empty() {
                continue;
            }
            let (ty, s) = if v6 {
                ("ipv6_addr", 6)
            } else {
                ("ipv4_addr", 4)
            };
            t.sets.push((format!("{name}-{s}"), ty, m));
        }
    }
    let chains = &mut t.chains;
    for (id, p) in &plan.policies {
        policy_chains(chains, &|i| policy_chain(id, i), id, p, &plan.sets);
    }
    for (name, p) in &plan.profiles {
        let label = format!("profile {name}");
        policy_chains(chains, &|i| profile_chain(name, i), &label, p, &plan.sets);
    }
    for (iface, ep) in &plan.endpoints {
        for (ingress, tiers) in [(true, &ep.ingress), (false, &ep.egress)] {
            let dir = if ingress { "to" } else { "from" };
            let what = format!("{iface}: nothing allowed");
            let ends = End::Drop(&what);
            endpoint_chains(
                chains,
                &format!("{dir}-{iface}"),
                tiers,
                &ep.profiles,
                ingress,
                ends,
            );
        }
    }
    let known: Vec<String> = plan.endpoints.keys().map(|k| quote(k)).collect();
    let vmap = |dir: &str| {
        plan.endpoints
            .keys()
            .map(|k| format!("{} : jump {dir}-{k}", quote(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unknown = |field: &str| {
        if known.is_empty() {
            format!("{field} \"{WORKLOAD_PREFIX}*\" counter drop comment \"unknown workload\"")
        } else {
            format!(
                "{field} \"{WORKLOAD_PREFIX}*\" {field} != {{ {} }} counter drop comment \"unknown workload\"",
                known.join(", ")
            )
        }
    };
    for (chain, hook, with_to) in [("forward", "forward", true), ("input", "input", false)] {
        let mut c = Chain {
            head: Some(format!(
                "type filter hook {hook} priority filter - 5; policy accept;"
            )),
            rules: vec![
                "ct state established,related accept".to_string(),
                "ct state invalid drop".to_string(),
                format!("meta mark set meta mark & {CLEAR}"),
            ],
        };
        if !known.is_empty() {
            c.rules.push(format!("iifname vmap {{ {} }}", vmap("from")));
        }
        c.rules.push(unknown("iifname"));
        if with_to {
            c.rules.push(format!("meta mark set meta mark & {CLEAR}"));
            if !known.is_empty() {
                c.rules.push(format!("oifname vmap {{ {} }}", vmap("to")));
            }
            c.rules.push(unknown("oifname"));
        }
        chains.push((chain.to_string(), c));
    }
    nat(plan, &mut t);
    crate::nft_host::render_hosts(plan, &mut t);
    let mut h = Fnv::default();
    t.sets.hash(&mut h);
    t.chains.hash(&mut h);
    t.hash = format!("{:016x}", h.finish());
    t
}
