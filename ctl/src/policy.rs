//! `brindlectl policy show [ENDPOINT]`: the policy a local endpoint gets (tiers, policies,
//! profiles) with each rule's packet and byte counters, from the node daemon's status API.

use std::io::Write;
use std::path::Path;

use brindle_proto::status as pb;
use serde_json::json;

use crate::status::{Format, connect, print_value};

fn tiers(out: &mut dyn Write, dir: &str, tiers: &[pb::PolicyTier]) -> std::io::Result<()> {
    if tiers.is_empty() {
        return writeln!(out, "{dir}: no policy (the profiles decide)");
    }
    writeln!(out, "{dir}:")?;
    for t in tiers {
        let end = if t.pass_at_end { "pass" } else { "drop" };
        writeln!(out, "  tier {} (nothing decided: {end})", t.tier)?;
        for p in &t.policies {
            writeln!(out, "    {p}")?;
        }
    }
    Ok(())
}

/// `policy show`: without an endpoint, the endpoints; with one, its policy and counters.
pub async fn show(
    path: &Path,
    endpoint: Option<&str>,
    fmt: Format,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut c = connect(path).await?;
    let p = c
        .get_policy(pb::GetPolicyRequest {
            endpoint: endpoint.unwrap_or_default().to_string(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let dataplane = match pb::PolicyDataplane::try_from(p.dataplane) {
        Ok(pb::PolicyDataplane::Nftables) => "nftables",
        Ok(pb::PolicyDataplane::Iptables) => "iptables",
        _ => "unknown",
    };
    if matches!(fmt, Format::Json | Format::Yaml) {
        let tiers = |ts: &[pb::PolicyTier]| {
            ts.iter()
                .map(
                    |t| json!({"tier": t.tier, "policies": t.policies, "passAtEnd": t.pass_at_end}),
                )
                .collect::<Vec<_>>()
        };
        let v = json!({
            "endpoint": p.endpoint, "dataplane": dataplane, "endpoints": p.endpoints,
            "ingress": tiers(&p.ingress), "egress": tiers(&p.egress), "profiles": p.profiles,
            "counters": p.counters.iter().map(|c| json!({"rule": c.rule, "packets": c.packets, "bytes": c.bytes})).collect::<Vec<_>>(),
        });
        print_value(&v, fmt, out)?;
        return Ok(true);
    }
    if endpoint.is_none() {
        writeln!(out, "dataplane: {dataplane}")?;
        for e in &p.endpoints {
            writeln!(out, "{e}")?;
        }
        return Ok(true);
    }
    writeln!(out, "endpoint {} ({dataplane})", p.endpoint)?;
    tiers(out, "ingress", &p.ingress)?;
    tiers(out, "egress", &p.egress)?;
    writeln!(out, "profiles: {}", p.profiles.join(", "))?;
    writeln!(out, "rules:")?;
    let w = p.counters.iter().map(|c| c.rule.len()).max().unwrap_or(0);
    for c in &p.counters {
        writeln!(
            out,
            "  {:<w$}  {:>10} packets  {:>12} bytes",
            c.rule, c.packets, c.bytes
        )?;
    }
    Ok(true)
}
