//! Host endpoints in the iptables dataplane (see [`crate::host`] for the semantics), laid out
//! as in nftables:
//!
//! ```text
//! brindle-INPUT (after the workloads): failsafe inbound ports accept;
//!                           -i X → brindle-hi-X; allowed → accept   ("*": every other interface)
//! brindle-OUTPUT:           established accept; failsafe outbound ports accept;
//!                           -o X → brindle-ho-X; allowed → accept
//! brindle-FORWARD:          -i X → brindle-hfi-X; -o X → brindle-hfo-X (applyOnForward)
//! mangle brindle-PREROUTING: established accept; -i X → brindle-hp-X (preDNAT)
//! raw brindle-PREROUTING / brindle-OUTPUT: -i / -o X → brindle-hui-X / brindle-huo-X;
//!                           allowed → mark 0x40000 and CT --notrack; the filter chains
//!                           accept that mark first.
//! ```
//! The policy chains an early stage uses are rendered into its table too (iptables chains
//! belong to one table).

use std::collections::{BTreeMap, BTreeSet};

use crate::calc::{Plan, TierPlan};
use crate::ipt::{
    ACCEPT, CLEAR, Chains, End, Out, PREFIX, comment, endpoint_chains, policy_chains,
};
use crate::nft::WORKLOAD_PREFIX;

const UNTRACKED: &str = "0x40000/0x40000";

/// Jumps to `<prefix>-<iface>` for packets of `flag` (`-i`/`-o`) on those interfaces, each
/// followed by `after` (e.g. accept when allowed).
fn dispatch(flag: &str, prefix: &str, ifaces: &[&String], after: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for i in ifaces {
        let (m, s) = if i.as_str() == "*" {
            (format!("! {flag} {WORKLOAD_PREFIX}+"), "all")
        } else {
            (format!("{flag} {i}"), i.as_str())
        };
        if i.as_str() == "*" {
            out.push(format!("{flag} lo -j RETURN"));
        }
        out.push(format!("{m} -j {PREFIX}{prefix}-{s}"));
        if let Some(a) = after {
            out.push(format!("{m} {a}"));
        }
    }
    out
}

fn failsafe(flag: &str, ports: &[(u8, u16)]) -> Vec<String> {
    let mut by_proto: BTreeMap<u8, Vec<String>> = BTreeMap::new();
    for (p, n) in ports {
        by_proto.entry(*p).or_default().push(n.to_string());
    }
    let mut out = Vec::new();
    for (p, list) in by_proto {
        for chunk in list.chunks(15) {
            out.push(format!(
                "! {flag} {WORKLOAD_PREFIX}+ -p {p} -m multiport --dports {} {} -j ACCEPT",
                chunk.join(","),
                comment("failsafe")
            ));
        }
    }
    out
}

fn ids<'a>(tiers: impl Iterator<Item = &'a Vec<TierPlan>>) -> BTreeSet<&'a str> {
    tiers
        .flatten()
        .flat_map(|t| t.policies.iter().map(String::as_str))
        .collect()
}

/// Adds the host endpoints' chains to the filter `chains`, their dispatch to `input`,
/// `forward` and `output`, and the early stages to the mangle and raw `tables`.
pub(crate) fn render_hosts(
    plan: &Plan,
    out: &mut Out,
    v6: bool,
    chains: &mut Chains,
    [input, forward, output]: [&mut Vec<String>; 3],
    tables: &mut BTreeMap<&'static str, Chains>,
) {
    if plan.hosts.is_empty() {
        return;
    }
    let (mut to_host, mut fwd_in, mut fwd_out, mut pre, mut untr_in, mut untr_out) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut mangle = Chains::new();
    let mut raw = Chains::new();
    for (iface, hp) in &plan.hosts {
        let s = crate::host::chain_suffix(iface);
        let what = format!("host endpoint {iface}: nothing allowed");
        for (ingress, tiers, d) in [
            (true, &hp.normal.ingress, "hi"),
            (false, &hp.normal.egress, "ho"),
        ] {
            let name = format!("{PREFIX}{d}-{s}");
            endpoint_chains(
                chains,
                &name,
                tiers,
                &hp.normal.profiles,
                ingress,
                End::Drop(&what),
            );
        }
        to_host.push(iface);
        if let Some(f) = &hp.forward {
            let what = format!("forwarded through host endpoint {iface}: nothing allowed");
            for (ingress, tiers, d, list) in [
                (true, &f.ingress, "hfi", &mut fwd_in),
                (false, &f.egress, "hfo", &mut fwd_out),
            ] {
                if !tiers.is_empty() {
                    let name = format!("{PREFIX}{d}-{s}");
                    endpoint_chains(chains, &name, tiers, &[], ingress, End::Drop(&what));
                    list.push(iface);
                }
            }
        }
        if !hp.pre_dnat.is_empty() {
            let name = format!("{PREFIX}hp-{s}");
            endpoint_chains(&mut mangle, &name, &hp.pre_dnat, &[], true, End::Return);
            pre.push(iface);
        }
        for (ingress, tiers, d, list) in [
            (true, &hp.untracked.ingress, "hui", &mut untr_in),
            (false, &hp.untracked.egress, "huo", &mut untr_out),
        ] {
            if !tiers.is_empty() {
                let name = format!("{PREFIX}{d}-{s}");
                endpoint_chains(&mut raw, &name, tiers, &[], ingress, End::Return);
                list.push(iface);
            }
        }
    }
    let accept = format!("-m mark --mark {ACCEPT} -j ACCEPT");
    let clear = format!("-j MARK --set-xmark {CLEAR}");
    input.extend(failsafe("-i", &plan.failsafe.inbound));
    input.push(clear.clone());
    input.extend(dispatch("-i", "hi", &to_host, Some(&accept)));
    output.extend(failsafe("-o", &plan.failsafe.outbound));
    output.push(clear.clone());
    output.extend(dispatch("-o", "ho", &to_host, Some(&accept)));
    for (flag, d, list) in [("-i", "hfi", &fwd_in), ("-o", "hfo", &fwd_out)] {
        if !list.is_empty() {
            forward.push(clear.clone());
            forward.extend(dispatch(flag, d, list, None));
        }
    }
    if !untr_in.is_empty() || !untr_out.is_empty() {
        let first = format!("-m mark --mark {UNTRACKED} -j ACCEPT");
        for c in [&mut *input, &mut *forward, &mut *output] {
            c.insert(0, first.clone());
        }
    }
    if !pre.is_empty() {
        let used = ids(plan.hosts.values().map(|h| &h.pre_dnat));
        policy_chains(plan, out, &mut mangle, Some(&used), v6);
        let mut c = vec![
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string(),
            clear.clone(),
        ];
        c.extend(dispatch("-i", "hp", &pre, None));
        mangle.insert(format!("{PREFIX}PREROUTING"), c);
    }
    if !untr_in.is_empty() || !untr_out.is_empty() {
        let used = ids(plan
            .hosts
            .values()
            .flat_map(|h| [&h.untracked.ingress, &h.untracked.egress]));
        policy_chains(plan, out, &mut raw, Some(&used), v6);
        for (hook, flag, d, list) in [
            ("PREROUTING", "-i", "hui", &untr_in),
            ("OUTPUT", "-o", "huo", &untr_out),
        ] {
            let mut c = vec!["-j MARK --set-xmark 0x0/0x70000".to_string()];
            c.extend(dispatch(flag, d, list, None));
            c.push(format!(
                "-m mark --mark {ACCEPT} -j MARK --set-xmark {UNTRACKED}"
            ));
            c.push(format!("-m mark --mark {UNTRACKED} -j CT --notrack"));
            raw.insert(format!("{PREFIX}{hook}"), c);
        }
    }
    tables.insert("mangle", mangle);
    tables.insert("raw", raw);
}
