//! The nftables renderer: a [`Plan`] to one `nft -f` script that replaces Brindle's table
//! (`inet brindle`) in a single transaction. Pure and deterministic (golden-tested).
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
//! the policy and rule index. Address sets are named sets `s<hash>-4` / `s<hash>-6`.

use std::collections::BTreeSet;
use std::fmt::Write;

use ipnetwork::IpNetwork;

use crate::calc::{CPolicy, CRule, Plan, Side, Verdict, stable_hash};

/// Brindle's table.
pub const TABLE: &str = "brindle";
/// The interface prefix of workloads.
pub const WORKLOAD_PREFIX: &str = "cali";
const ACCEPT: &str = "0x00010000";
const PASS: &str = "0x00020000";
const CLEAR: &str = "0xfffcffff";
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

fn quote(s: &str) -> String {
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

/// The matches of one side for one family; None when the side cannot match in this family.
fn side(s: &Side, saddr: bool, v6: bool) -> Option<String> {
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
        let _ = write!(m, "{fam} {field} @{set}-{fam_s} ");
    }
    let not = minimal(s.not_nets.iter().copied().filter(|n| n.is_ipv6() == v6));
    if !not.is_empty() {
        let _ = write!(m, "{fam} {field} != {{ {} }} ", elements(&not));
    }
    for set in &s.not_sets {
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

/// One compiled rule in a chain for traffic *to* (`ingress`) or *from* the endpoint.
fn rule(out: &mut String, r: &CRule, comment: &str) {
    if r.never {
        return;
    }
    for v6 in [false, true] {
        if !r.in_family(v6) {
            continue;
        }
        let (Some(src), Some(dst)) = (side(&r.src, true, v6), side(&r.dst, false, v6)) else {
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
        let _ = writeln!(out, "    {m}counter {verdict} comment {}", quote(comment));
    }
}

fn policy_chains(out: &mut String, name: &dyn Fn(bool) -> String, label: &str, p: &CPolicy) {
    for (ingress, rules) in [(true, &p.ingress), (false, &p.egress)] {
        let _ = writeln!(out, "  chain {} {{", name(ingress));
        for (i, r) in rules.iter().enumerate() {
            let dir = if ingress { "ingress" } else { "egress" };
            rule(out, r, &format!("{label} {dir}[{i}]"));
        }
        let _ = writeln!(out, "  }}");
    }
}

/// Renders the whole table (with `content` — a hash of the plan — in its comment).
pub fn render(plan: &Plan) -> String {
    let mut body = String::new();
    for (name, members) in &plan.sets {
        for v6 in [false, true] {
            let m = minimal(members.iter().copied().filter(|n| n.is_ipv6() == v6));
            let (t, s) = if v6 {
                ("ipv6_addr", 6)
            } else {
                ("ipv4_addr", 4)
            };
            let _ = writeln!(
                body,
                "  set {name}-{s} {{\n    type {t}\n    flags interval"
            );
            if !m.is_empty() {
                let _ = writeln!(body, "    elements = {{ {} }}", elements(&m));
            }
            let _ = writeln!(body, "  }}");
        }
    }
    for (id, p) in &plan.policies {
        policy_chains(&mut body, &|i| policy_chain(id, i), id, p);
    }
    for (name, p) in &plan.profiles {
        policy_chains(
            &mut body,
            &|i| profile_chain(name, i),
            &format!("profile {name}"),
            p,
        );
    }
    for (iface, ep) in &plan.endpoints {
        for (ingress, tiers) in [(true, &ep.ingress), (false, &ep.egress)] {
            let dir = if ingress { "to" } else { "from" };
            let epc = format!("{dir}-{iface}");
            for (n, t) in tiers.iter().enumerate() {
                let _ = writeln!(body, "  chain t-{epc}-{n} {{");
                for pid in &t.policies {
                    let _ = writeln!(body, "    jump {}", policy_chain(pid, ingress));
                    let _ = writeln!(body, "    meta mark & 0x00030000 != 0 return");
                }
                if t.pass_at_end {
                    let _ = writeln!(body, "    meta mark set meta mark | {PASS} return");
                } else {
                    let _ = writeln!(
                        body,
                        "    counter drop comment {}",
                        quote(&format!("end of tier {}", t.tier))
                    );
                }
                let _ = writeln!(body, "  }}");
            }
            let _ = writeln!(body, "  chain {epc} {{");
            let _ = writeln!(body, "    meta mark set meta mark & {CLEAR}");
            for n in 0..tiers.len() {
                let _ = writeln!(body, "    jump t-{epc}-{n}");
                let _ = writeln!(body, "    meta mark & {ACCEPT} != 0 return");
                let _ = writeln!(body, "    meta mark set meta mark & {CLEAR_PASS}");
            }
            for pr in &ep.profiles {
                let _ = writeln!(body, "    jump {}", profile_chain(pr, ingress));
                let _ = writeln!(body, "    meta mark & {ACCEPT} != 0 return");
                let _ = writeln!(body, "    meta mark set meta mark & {CLEAR_PASS}");
            }
            let _ = writeln!(
                body,
                "    counter drop comment {}",
                quote(&format!("{iface}: nothing allowed"))
            );
            let _ = writeln!(body, "  }}");
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
            format!(
                "    {field} \"{WORKLOAD_PREFIX}*\" counter drop comment \"unknown workload\"\n"
            )
        } else {
            format!(
                "    {field} \"{WORKLOAD_PREFIX}*\" {field} != {{ {} }} counter drop comment \"unknown workload\"\n",
                known.join(", ")
            )
        }
    };
    for (chain, hook, with_to) in [("forward", "forward", true), ("input", "input", false)] {
        let _ = writeln!(
            body,
            "  chain {chain} {{\n    type filter hook {hook} priority filter - 5; policy accept;"
        );
        let _ = writeln!(
            body,
            "    ct state established,related accept\n    ct state invalid drop"
        );
        let _ = writeln!(body, "    meta mark set meta mark & {CLEAR}");
        if !known.is_empty() {
            let _ = writeln!(body, "    iifname vmap {{ {} }}", vmap("from"));
        }
        body.push_str(&unknown("iifname"));
        if with_to {
            let _ = writeln!(body, "    meta mark set meta mark & {CLEAR}");
            if !known.is_empty() {
                let _ = writeln!(body, "    oifname vmap {{ {} }}", vmap("to"));
            }
            body.push_str(&unknown("oifname"));
        }
        let _ = writeln!(body, "  }}");
    }
    let hash = format!("{:016x}", stable_hash(&body));
    format!("table inet {TABLE} {{\n  comment \"brindle {hash}\"\n{body}}}\n")
}

/// The content hash a rendered table carries in its comment.
pub fn content_hash(rendered: &str) -> Option<&str> {
    let i = rendered.find("comment \"brindle ")? + "comment \"brindle ".len();
    rendered.get(i..i + 16)
}
