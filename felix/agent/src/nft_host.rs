//! Host endpoints in Brindle's nftables table (see [`crate::host`] for the semantics):
//!
//! ```text
//! input (after the workloads):  failsafe inbound ports accept;
//!                               iifname vmap { X : jump hi-X }   ("*": every other interface)
//! output (new base chain):      established accept; failsafe outbound ports accept;
//!                               oifname vmap { X : jump ho-X }
//! forward (after the workloads): iifname vmap { X : jump hfi-X }; oifname vmap { X : jump hfo-X }
//!                               (only directions with an applyOnForward policy)
//! pre-dnat (prerouting, before DNAT): iifname vmap { X : jump hp-X }
//! raw-pre / raw-out (before conntrack): iifname / oifname vmap { X : jump hui-X / huo-X };
//!                               allowed → mark 0x40000 and notrack; input, forward and
//!                               output accept that mark first.
//! ```

use crate::calc::Plan;
use crate::nft::{ACCEPT, CLEAR, Chain, End, Table, WORKLOAD_PREFIX, endpoint_chains, quote};

const UNTRACKED: &str = "0x00040000";

/// Dispatch rules for `field` (iifname/oifname) to `<prefix>-<iface>` for the interfaces in
/// `ifaces`: a verdict map for named ones, a catch-all rule for `*`.
fn dispatch(field: &str, prefix: &str, ifaces: &[&String]) -> Vec<String> {
    let named: Vec<String> = ifaces
        .iter()
        .filter(|i| i.as_str() != "*")
        .map(|i| format!("{} : jump {prefix}-{i}", quote(i)))
        .collect();
    let mut out = Vec::new();
    if !named.is_empty() {
        out.push(format!("{field} vmap {{ {} }}", named.join(", ")));
    }
    if ifaces.iter().any(|i| i.as_str() == "*") {
        out.push(format!(
            "{field} != \"{WORKLOAD_PREFIX}*\" {field} != \"lo\" jump {prefix}-all"
        ));
    }
    out
}

fn failsafe(field: &str, ports: &[(u8, u16)]) -> Option<String> {
    if ports.is_empty() {
        return None;
    }
    let list: Vec<String> = ports.iter().map(|(p, n)| format!("{p} . {n}")).collect();
    Some(format!(
        "{field} != \"{WORKLOAD_PREFIX}*\" meta l4proto . th dport {{ {} }} counter accept comment \"failsafe\"",
        list.join(", ")
    ))
}

fn chain_mut<'a>(t: &'a mut Table, name: &str) -> Option<&'a mut Chain> {
    t.chains.iter_mut().find(|(n, _)| n == name).map(|(_, c)| c)
}

/// Adds the host endpoints' chains and dispatch to `t` (nothing without host endpoints).
pub(crate) fn render_hosts(plan: &Plan, t: &mut Table) {
    if plan.hosts.is_empty() {
        return;
    }
    let chains = &mut t.chains;
    let mut to_host = Vec::new();
    let mut from_host = Vec::new();
    let (mut fwd_in, mut fwd_out, mut pre, mut untr_in, mut untr_out) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (iface, hp) in &plan.hosts {
        let s = crate::host::chain_suffix(iface);
        let what = format!("host endpoint {iface}: nothing allowed");
        for (ingress, tiers) in [(true, &hp.normal.ingress), (false, &hp.normal.egress)] {
            let name = format!("{}-{s}", if ingress { "hi" } else { "ho" });
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
        from_host.push(iface);
        if let Some(f) = &hp.forward {
            for (ingress, tiers, list) in [
                (true, &f.ingress, &mut fwd_in),
                (false, &f.egress, &mut fwd_out),
            ] {
                if tiers.is_empty() {
                    continue;
                }
                let name = format!("{}-{s}", if ingress { "hfi" } else { "hfo" });
                let what = format!("forwarded through host endpoint {iface}: nothing allowed");
                endpoint_chains(chains, &name, tiers, &[], ingress, End::Drop(&what));
                list.push(iface);
            }
        }
        if !hp.pre_dnat.is_empty() {
            endpoint_chains(
                chains,
                &format!("hp-{s}"),
                &hp.pre_dnat,
                &[],
                true,
                End::Return,
            );
            pre.push(iface);
        }
        for (ingress, tiers, list) in [
            (true, &hp.untracked.ingress, &mut untr_in),
            (false, &hp.untracked.egress, &mut untr_out),
        ] {
            if tiers.is_empty() {
                continue;
            }
            let name = format!("{}-{s}", if ingress { "hui" } else { "huo" });
            endpoint_chains(chains, &name, tiers, &[], ingress, End::Return);
            list.push(iface);
        }
    }
    let untracked = !untr_in.is_empty() || !untr_out.is_empty();
    let clear = format!("meta mark set meta mark & {CLEAR}");
    let accept_untracked = format!("meta mark & {UNTRACKED} != 0 accept");
    // input: failsafe, then the host endpoints.
    if let Some(c) = chain_mut(t, "input") {
        c.rules.extend(failsafe("iifname", &plan.failsafe.inbound));
        c.rules.push(clear.clone());
        c.rules.extend(dispatch("iifname", "hi", &to_host));
        if untracked {
            c.rules.insert(0, accept_untracked.clone());
        }
    }
    if let Some(c) = chain_mut(t, "forward") {
        if !fwd_in.is_empty() {
            c.rules.push(clear.clone());
            c.rules.extend(dispatch("iifname", "hfi", &fwd_in));
        }
        if !fwd_out.is_empty() {
            c.rules.push(clear.clone());
            c.rules.extend(dispatch("oifname", "hfo", &fwd_out));
        }
        if untracked {
            c.rules.insert(0, accept_untracked.clone());
        }
    }
    let mut output = Chain {
        head: Some("type filter hook output priority filter - 5; policy accept;".into()),
        rules: Vec::new(),
    };
    if untracked {
        output.rules.push(accept_untracked);
    }
    output.rules.extend([
        "ct state established,related accept".to_string(),
        "ct state invalid drop".to_string(),
    ]);
    output
        .rules
        .extend(failsafe("oifname", &plan.failsafe.outbound));
    output.rules.push(clear.clone());
    output.rules.extend(dispatch("oifname", "ho", &from_host));
    t.chains.push(("output".into(), output));
    if !pre.is_empty() {
        let mut c = Chain {
            head: Some("type filter hook prerouting priority dstnat - 10; policy accept;".into()),
            // As in Calico, pre-DNAT policy judges new flows only.
            rules: vec![
                "ct state established,related accept".to_string(),
                clear.clone(),
            ],
        };
        c.rules.extend(dispatch("iifname", "hp", &pre));
        t.chains.push(("pre-dnat".into(), c));
    }
    for (name, hook, field, prefix, list) in [
        ("raw-pre", "prerouting", "iifname", "hui", &untr_in),
        ("raw-out", "output", "oifname", "huo", &untr_out),
    ] {
        if list.is_empty() {
            continue;
        }
        let mut c = Chain {
            head: Some(format!(
                "type filter hook {hook} priority raw; policy accept;"
            )),
            rules: vec![format!("meta mark set meta mark & 0xfff8ffff")],
        };
        c.rules.extend(dispatch(field, prefix, list));
        c.rules.push(format!(
            "meta mark & {ACCEPT} != 0 meta mark set meta mark | {UNTRACKED} notrack"
        ));
        t.chains.push((name.into(), c));
    }
}
