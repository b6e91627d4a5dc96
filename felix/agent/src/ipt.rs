//! The iptables renderer: a [`Plan`] to `iptables-restore --noflush` input for IPv4 and IPv6
//! plus the ipsets its rules match on. Pure and deterministic (golden-tested); the same
//! semantics as the nftables renderer, laid out the way iptables needs:
//!
//! ```text
//! FORWARD → brindle-FORWARD, INPUT → brindle-INPUT (one jump each, inserted first)
//! brindle-FORWARD: "brindle <hash>" marker; established → accept; invalid → drop;
//!   -i cali+ → brindle-from-wl: -i caliX → goto brindle-fw-caliX … ; else drop (unknown)
//!   -o cali+ → brindle-to-wl:   -o caliY → goto brindle-tw-caliY … ; else drop (unknown)
//!   from or to cali+ → accept (allowed by policy; a FORWARD policy of DROP does not apply)
//! brindle-tw-caliY: per tier: jump brindle-t-<hash>; accepted → return; clear pass;
//!   then the profiles; nothing accepted → drop
//! brindle-t-<hash>: jump each policy chain; accepted or passed → return; end of tier → drop
//! brindle-pi-/-po-<hash> (policies), brindle-ri-/-ro-<hash> (profiles): rules
//! ```
//! NAT outgoing: POSTROUTING → brindle-POSTROUTING in the nat table, masquerading from the
//! ipset `brindle-masq-<family>` (pools with `natOutgoing`) to anywhere outside
//! `brindle-pools-<family>` (every pool).
//!
//! Marks as in nftables: 0x10000 accepted, 0x20000 passed. An Allow or Pass rule is two
//! iptables rules (set the mark, then return on it). Address sets are ipsets `brindle-s<hash>-4`
//! / `-6` (selectors) and `brindle-n<hash>-4` / `-6` (a rule's `nets`/`notNets` when more than
//! one); multiport takes 15 ports at most, so longer port lists become several rules (positive)
//! or several matches (negative). Chain names stay under iptables' 28 characters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use ipnetwork::IpNetwork;

use std::hash::{Hash, Hasher};

use crate::calc::{CPolicy, CRule, Plan, Side, Verdict, stable_hash};
pub(crate) use crate::nft::End;
use crate::nft::{WORKLOAD_PREFIX, minimal};

/// The prefix of every chain and ipset of ours.
pub const PREFIX: &str = "brindle-";
pub(crate) const ACCEPT: &str = "0x10000/0x10000";
const PASS: &str = "0x20000/0x20000";
pub(crate) const CLEAR: &str = "0x0/0x30000";
const CLEAR_PASS: &str = "0x0/0x20000";
/// The most ports one multiport match takes (a range counts twice).
const MULTIPORT_SLOTS: usize = 15;

/// Chains of one table: name → rules (`-A` lines without the `-A <chain>`).
pub type Chains = BTreeMap<String, Vec<String>>;

/// The tables we write to.
pub const TABLES: [&str; 4] = ["filter", "nat", "mangle", "raw"];
/// The built-in chains we hook, by table: each jumps (first) to `brindle-<name>`.
pub const HOOKS: [(&str, &str); 7] = [
    ("filter", "FORWARD"),
    ("filter", "INPUT"),
    ("filter", "OUTPUT"),
    ("nat", "POSTROUTING"),
    ("mangle", "PREROUTING"),
    ("raw", "PREROUTING"),
    ("raw", "OUTPUT"),
];

/// What the iptables dataplane applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// ipsets: name → (IPv6, members).
    pub sets: BTreeMap<String, (bool, Vec<IpNetwork>)>,
    /// Per family (IPv4, IPv6) and table, our chains; every hooked chain is there (maybe
    /// empty).
    pub tables: [BTreeMap<&'static str, Chains>; 2],
    /// The content hash (carried by the marker rule).
    pub hash: String,
}

fn h12(s: &str) -> String {
    format!("{:012x}", stable_hash(s) & 0xffff_ffff_ffff)
}

fn policy_chain(id: &str, ingress: bool) -> String {
    format!("{PREFIX}p{}-{}", if ingress { "i" } else { "o" }, h12(id))
}

fn profile_chain(name: &str, ingress: bool) -> String {
    format!("{PREFIX}r{}-{}", if ingress { "i" } else { "o" }, h12(name))
}

fn endpoint_chain(iface: &str, ingress: bool) -> String {
    format!("{PREFIX}{}w-{iface}", if ingress { "t" } else { "f" })
}

pub(crate) fn comment(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !matches!(c, '"' | '\\' | '\n'))
        .take(250)
        .collect();
    format!("-m comment --comment \"{clean}\"")
}

/// Groups ports into multiport lists of at most 15 slots.
fn port_groups(p: &[(u16, u16)]) -> Vec<String> {
    let mut groups = Vec::new();
    let (mut cur, mut slots) = (Vec::new(), 0);
    for (a, b) in p {
        let (text, n) = if a == b {
            (a.to_string(), 1)
        } else {
            (format!("{a}:{b}"), 2)
        };
        if slots + n > MULTIPORT_SLOTS {
            groups.push(std::mem::take(&mut cur).join(","));
            slots = 0;
        }
        cur.push(text);
        slots += n;
    }
    if !cur.is_empty() {
        groups.push(cur.join(","));
    }
    groups
}

pub(crate) struct Out<'a> {
    sets: &'a mut BTreeMap<String, (bool, Vec<IpNetwork>)>,
    /// The plan's address sets (a selector set with no member in a family never matches
    /// there).
    plan_sets: &'a BTreeMap<String, std::collections::BTreeSet<IpNetwork>>,
}

impl Out<'_> {
    fn has_members(&self, set: &str, v6: bool) -> bool {
        self.plan_sets
            .get(set)
            .is_some_and(|m| m.iter().any(|n| n.is_ipv6() == v6))
    }
}

impl Out<'_> {
    /// The address matches of one side in one family; None when it cannot match there.
    fn addrs(&mut self, s: &Side, src: bool, v6: bool) -> Option<String> {
        let (flag, dir) = if src { ("-s", "src") } else { ("-d", "dst") };
        let fam = if v6 { "6" } else { "4" };
        let mut m = String::new();
        let mut nets = |list: &[IpNetwork], not: bool, m: &mut String| -> bool {
            let nets = minimal(list.iter().copied().filter(|n| n.is_ipv6() == v6));
            let bang = if not { "! " } else { "" };
            match nets.as_slice() {
                [] => !list.is_empty() && !not,
                // One positive net is a plain -s/-d; a negated one takes an ipset, since
                // iptables allows a single -s per rule.
                [one] if !not => {
                    let _ = write!(m, " {flag} {one}");
                    false
                }
                many => {
                    let key: Vec<String> = many.iter().map(ToString::to_string).collect();
                    let name = format!("{PREFIX}n{:016x}-{fam}", stable_hash(&key.join(",")));
                    self.sets.insert(name.clone(), (v6, many.to_vec()));
                    let _ = write!(m, " -m set {bang}--match-set {name} {dir}");
                    false
                }
            }
        };
        // Positive nets given but none of this family: the rule cannot match here.
        if nets(&s.nets, false, &mut m) {
            return None;
        }
        nets(&s.not_nets, true, &mut m);
        for set in &s.sets {
            if !self.has_members(set, v6) {
                return None;
            }
            let _ = write!(m, " -m set --match-set {PREFIX}{set}-{fam} {dir}");
        }
        for set in s.not_sets.iter().filter(|n| self.has_members(n, v6)) {
            let _ = write!(m, " -m set ! --match-set {PREFIX}{set}-{fam} {dir}");
        }
        Some(m)
    }

    /// The iptables rules of one compiled rule in one family.
    fn rule(&mut self, r: &CRule, label: &str, v6: bool) -> Vec<String> {
        if r.never || !r.in_family(v6) {
            return Vec::new();
        }
        let (Some(src), Some(dst)) = (self.addrs(&r.src, true, v6), self.addrs(&r.dst, false, v6))
        else {
            return Vec::new();
        };
        let has_ports = [&r.src, &r.dst]
            .iter()
            .any(|s| !s.ports.is_empty() || !s.not_ports.is_empty());
        // Ports need a protocol in iptables; without one the rule covers TCP, UDP and SCTP.
        let protocols: Vec<Option<u8>> = match r.protocol {
            Some(p) => vec![Some(p)],
            None if has_ports => vec![Some(6), Some(17), Some(132)],
            None => vec![None],
        };
        let mut not_ports = String::new();
        for (s, f) in [(&r.src, "sports"), (&r.dst, "dports")] {
            for g in port_groups(&s.not_ports) {
                let _ = write!(not_ports, " -m multiport ! --{f} {g}");
            }
        }
        let opt = |v: Vec<String>| if v.is_empty() { vec![String::new()] } else { v };
        let sports = opt(port_groups(&r.src.ports));
        let dports = opt(port_groups(&r.dst.ports));
        let mut out = Vec::new();
        for proto in &protocols {
            let mut head = String::new();
            if let Some(p) = proto {
                let _ = write!(head, " -p {p}");
            }
            if let Some(p) = r.not_protocol {
                let _ = write!(head, " ! -p {p}");
            }
            head.push_str(&src);
            head.push_str(&dst);
            if let Some((t, code)) = r.icmp {
                let (m, f) = if v6 {
                    ("icmp6", "icmpv6-type")
                } else {
                    ("icmp", "icmp-type")
                };
                let tc = code.map_or(t.to_string(), |c| format!("{t}/{c}"));
                let _ = write!(head, " -m {m} --{f} {tc}");
            }
            for sp in &sports {
                for dp in &dports {
                    let mut m = head.clone();
                    if !sp.is_empty() {
                        let _ = write!(m, " -m multiport --sports {sp}");
                    }
                    if !dp.is_empty() {
                        let _ = write!(m, " -m multiport --dports {dp}");
                    }
                    m.push_str(&not_ports);
                    let c = comment(label);
                    match r.verdict {
                        Verdict::Allow | Verdict::Pass => {
                            let mark = if r.verdict == Verdict::Allow {
                                ACCEPT
                            } else {
                                PASS
                            };
                            out.push(format!("{m} {c} -j MARK --set-xmark {mark}"));
                            out.push(format!("-m mark --mark {mark} -j RETURN"));
                        }
                        Verdict::Deny => out.push(format!("{m} {c} -j DROP")),
                        Verdict::Log => {
                            let prefix: String =
                                format!("brindle {label}").chars().take(28).collect();
                            out.push(format!(
                                "{m} {c} -j LOG --log-prefix \"{} \" --log-level 6",
                                prefix.replace('"', "")
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    pub(crate) fn policy(
        &mut self,
        chains: &mut BTreeMap<String, Vec<String>>,
        name: &dyn Fn(bool) -> String,
        label: &str,
        p: &CPolicy,
        v6: bool,
    ) {
        for (ingress, rules) in [(true, &p.ingress), (false, &p.egress)] {
            let dir = if ingress { "ingress" } else { "egress" };
            let body = rules
                .iter()
                .enumerate()
                .flat_map(|(i, r)| self.rule(r, &format!("{label} {dir}[{i}]"), v6))
                .collect();
            chains.insert(name(ingress), body);
        }
    }
}

/// Endpoint chain `epc` and its tier chains for one direction.
pub(crate) fn endpoint_chains(
    chains: &mut Chains,
    epc: &str,
    tiers: &[crate::calc::TierPlan],
    profiles: &[String],
    ingress: bool,
    end: End,
) {
    let mut body = vec![format!("-j MARK --set-xmark {CLEAR}")];
    for (n, t) in tiers.iter().enumerate() {
        let tc = format!("{PREFIX}t-{}", h12(&format!("{epc}-{n}")));
        let mut tier = Vec::new();
        for pid in &t.policies {
            tier.push(format!("-j {}", policy_chain(pid, ingress)));
            tier.push("-m mark ! --mark 0x0/0x30000 -j RETURN".to_string());
        }
        if t.pass_at_end {
            tier.push(format!("-j MARK --set-xmark {PASS}"));
        } else if let End::Drop(_) = end {
            tier.push(format!(
                "{} -j DROP",
                comment(&format!("end of tier {}", t.tier))
            ));
        }
        chains.insert(tc.clone(), tier);
        body.push(format!("-j {tc}"));
        body.push(format!("-m mark --mark {ACCEPT} -j RETURN"));
        if let End::Return = end {
            body.push(format!("-m mark ! --mark {PASS} -j RETURN"));
        }
        body.push(format!("-j MARK --set-xmark {CLEAR_PASS}"));
    }
    for pr in profiles {
        body.push(format!("-j {}", profile_chain(pr, ingress)));
        body.push(format!("-m mark --mark {ACCEPT} -j RETURN"));
        body.push(format!("-j MARK --set-xmark {CLEAR_PASS}"));
    }
    if let End::Drop(what) = end {
        body.push(format!("{} -j DROP", comment(what)));
    }
    chains.insert(epc.to_string(), body);
}

/// Policy and profile chains for the ids given (all of them when `only` is None).
pub(crate) fn policy_chains(
    plan: &Plan,
    out: &mut Out,
    chains: &mut Chains,
    only: Option<&BTreeSet<&str>>,
    v6: bool,
) {
    for (id, p) in &plan.policies {
        if only.is_none_or(|o| o.contains(id.as_str())) {
            out.policy(chains, &|i| policy_chain(id, i), id, p, v6);
        }
    }
    if only.is_none() {
        for (name, p) in &plan.profiles {
            let label = format!("profile {name}");
            out.policy(chains, &|i| profile_chain(name, i), &label, p, v6);
        }
    }
}

fn family(plan: &Plan, out: &mut Out, v6: bool) -> BTreeMap<&'static str, Chains> {
    let mut chains = Chains::new();
    policy_chains(plan, out, &mut chains, None, v6);
    for (iface, ep) in &plan.endpoints {
        for (ingress, tiers) in [(true, &ep.ingress), (false, &ep.egress)] {
            let what = format!("{iface}: nothing allowed");
            let epc = endpoint_chain(iface, ingress);
            endpoint_chains(
                &mut chains,
                &epc,
                tiers,
                &ep.profiles,
                ingress,
                End::Drop(&what),
            );
        }
    }
    for (chain, flag, ingress) in [("from-wl", "-i", false), ("to-wl", "-o", true)] {
        let mut body: Vec<String> = plan
            .endpoints
            .keys()
            .map(|i| format!("{flag} {i} -g {}", endpoint_chain(i, ingress)))
            .collect();
        body.push(format!("{} -j DROP", comment("unknown workload")));
        chains.insert(format!("{PREFIX}{chain}"), body);
    }
    let wl = format!("{WORKLOAD_PREFIX}+");
    let head = || {
        vec![
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string(),
            "-m conntrack --ctstate INVALID -j DROP".to_string(),
            format!("-j MARK --set-xmark {CLEAR}"),
            format!("-i {wl} -j {PREFIX}from-wl"),
        ]
    };
    let allowed = |flag: &str| format!("{flag} {wl} {} -j ACCEPT", comment("allowed by policy"));
    let mut forward = head();
    forward.push(format!("-j MARK --set-xmark {CLEAR}"));
    forward.push(format!("-o {wl} -j {PREFIX}to-wl"));
    // What got here from or to a workload was allowed by policy: accept it, so a host whose
    // FORWARD policy is DROP (Docker sets that) still carries pod traffic. Host endpoints'
    // forward checks go in between.
    let mut forward_end = vec![allowed("-i"), allowed("-o")];
    let mut input = head();
    input.push(allowed("-i"));
    let mut output = vec![
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string(),
        "-m conntrack --ctstate INVALID -j DROP".to_string(),
    ];
    let mut tables: BTreeMap<&'static str, Chains> =
        TABLES.iter().map(|t| (*t, Chains::new())).collect();
    crate::ipt_host::render_hosts(
        plan,
        out,
        v6,
        &mut chains,
        [&mut input, &mut forward, &mut output],
        &mut tables,
    );
    forward.append(&mut forward_end);
    chains.insert(format!("{PREFIX}FORWARD"), forward);
    chains.insert(format!("{PREFIX}INPUT"), input);
    chains.insert(format!("{PREFIX}OUTPUT"), output);
    tables.insert("filter", chains);
    for (table, hook) in HOOKS {
        if let Some(t) = tables.get_mut(table) {
            t.entry(format!("{PREFIX}{hook}")).or_default();
        }
    }
    tables
}

/// Renders both families and their ipsets.
pub fn render(plan: &Plan) -> Rendered {
    let mut sets = BTreeMap::new();
    for (name, members) in &plan.sets {
        for v6 in [false, true] {
            let m = minimal(members.iter().copied().filter(|n| n.is_ipv6() == v6));
            if m.is_empty() {
                continue;
            }
            let fam = if v6 { 6 } else { 4 };
            sets.insert(format!("{PREFIX}{name}-{fam}"), (v6, m));
        }
    }
    let mut out = Out {
        sets: &mut sets,
        plan_sets: &plan.sets,
    };
    let mut tables = [family(plan, &mut out, false), family(plan, &mut out, true)];
    for v6 in [false, true] {
        let fam = |n: &&IpNetwork| n.is_ipv6() == v6;
        let masq = minimal(plan.nat.masquerade.iter().filter(fam).copied());
        if masq.is_empty() {
            continue;
        }
        let pools = minimal(plan.nat.pools.iter().filter(fam).copied());
        let f = if v6 { 6 } else { 4 };
        let (m, p) = (format!("{PREFIX}masq-{f}"), format!("{PREFIX}pools-{f}"));
        sets.insert(m.clone(), (v6, masq));
        sets.insert(p.clone(), (v6, pools));
        let rule = format!(
            "-m set --match-set {m} src -m set ! --match-set {p} dst {} -j MASQUERADE",
            comment("nat outgoing")
        );
        if let Some(nat) = tables[usize::from(v6)].get_mut("nat") {
            nat.insert(format!("{PREFIX}POSTROUTING"), vec![rule]);
        }
    }
    let mut h = crate::calc::Fnv::default();
    (&tables, &sets).hash(&mut h);
    let hash = format!("{:016x}", h.finish());
    for t in &mut tables {
        for c in ["FORWARD", "INPUT"] {
            if let Some(body) = t
                .get_mut("filter")
                .and_then(|f| f.get_mut(&format!("{PREFIX}{c}")))
            {
                body.insert(0, comment(&format!("brindle {hash}")));
            }
        }
    }
    Rendered { sets, tables, hash }
}

impl Rendered {
    /// `iptables-restore --noflush` input for one family: in each table, the chains `only`
    /// names (all of ours when None) declared (which creates or flushes them) and filled,
    /// `stale` chains flushed and deleted, and the jumps `missing` names added first in their
    /// built-in chains.
    pub fn restore(
        &self,
        v6: bool,
        only: Option<&BTreeMap<&str, BTreeSet<String>>>,
        stale: &BTreeMap<&str, BTreeSet<String>>,
        missing: &BTreeSet<(&str, &str)>,
    ) -> String {
        let mut s = String::new();
        for (table, chains) in &self.tables[usize::from(v6)] {
            let pick: Vec<(&String, &Vec<String>)> = chains
                .iter()
                .filter(|(c, _)| only.is_none_or(|o| o.get(table).is_some_and(|o| o.contains(*c))))
                .collect();
            let gone = stale.get(table);
            let jumps: Vec<&str> = HOOKS
                .iter()
                .filter(|(t, h)| t == table && missing.contains(&(*t, *h)))
                .map(|(_, h)| *h)
                .collect();
            if pick.is_empty() && gone.is_none_or(BTreeSet::is_empty) && jumps.is_empty() {
                continue;
            }
            let _ = writeln!(s, "*{table}");
            for (c, _) in &pick {
                let _ = writeln!(s, ":{c} - [0:0]");
            }
            for c in gone.into_iter().flatten() {
                let _ = writeln!(s, ":{c} - [0:0]");
            }
            for (c, rules) in &pick {
                for r in *rules {
                    let _ = writeln!(s, "-A {c} {r}");
                }
            }
            for c in gone.into_iter().flatten() {
                let _ = writeln!(s, "-X {c}");
            }
            for h in jumps {
                let _ = writeln!(s, "-I {h} 1 {} -j {PREFIX}{h}", comment("brindle"));
            }
            s.push_str("COMMIT\n");
        }
        s
    }

    /// `ipset restore` input: every set filled aside and swapped in (each set changes
    /// atomically).
    pub fn ipset_script(&self) -> String {
        self.ipset_script_for(|_| true)
    }

    /// The ipset script for the sets `pick` chooses.
    pub fn ipset_script_for(&self, pick: impl Fn(&str) -> bool) -> String {
        let mut s = String::new();
        for (name, (v6, members)) in self.sets.iter().filter(|(n, _)| pick(n)) {
            let fam = if *v6 { "inet6" } else { "inet" };
            let tmp = format!("{PREFIX}tmp-{:012x}", stable_hash(name) & 0xffff_ffff_ffff);
            let _ = writeln!(s, "create {name} hash:net family {fam} -exist");
            let _ = writeln!(s, "create {tmp} hash:net family {fam} -exist");
            let _ = writeln!(s, "flush {tmp}");
            for m in members {
                let _ = writeln!(s, "add {tmp} {m}");
            }
            let _ = writeln!(s, "swap {tmp} {name}");
            let _ = writeln!(s, "destroy {tmp}");
        }
        s
    }

    /// The whole rendering as text (golden tests, debugging).
    pub fn text(&self) -> String {
        let all: BTreeSet<(&str, &str)> = HOOKS.iter().copied().collect();
        let none = BTreeMap::new();
        format!(
            "# ipset restore\n{}# iptables-restore --noflush\n{}# ip6tables-restore --noflush\n{}",
            self.ipset_script(),
            self.restore(false, None, &none, &all),
            self.restore(true, None, &none, &all),
        )
    }
}
