//! Per-rule packet and byte counters read back from the kernel, by rule label (the comment
//! every rendered rule carries: `<policy id> ingress[3]`, `profile <name> egress[0]`), summed
//! over the rule's IPv4 and IPv6 forms.

use std::collections::BTreeMap;

use crate::dataplane::Kind;
use crate::driver::{Error, run};
use crate::nft::TABLE;

/// Label → (packets, bytes).
pub type Counters = BTreeMap<String, (u64, u64)>;

/// Reads the counters of the dataplane `kind`.
pub async fn read(kind: Kind) -> Result<Counters, Error> {
    let mut out = Counters::new();
    match kind {
        Kind::Nftables => {
            let text = run("nft", &["-j", "list", "table", "inet", TABLE], None, "list").await?;
            nft_counters(&text, &mut out);
        }
        Kind::Iptables => {
            for save in ["iptables-save", "ip6tables-save"] {
                let text = run(save, &["-c", "-t", "filter"], None, "save").await?;
                ipt_counters(&text, &mut out);
            }
        }
    }
    Ok(out)
}

fn add(out: &mut Counters, label: &str, p: u64, b: u64) {
    let e = out.entry(label.to_string()).or_insert((0, 0));
    e.0 += p;
    e.1 += b;
}

/// From `nft -j list table`: rules with a comment and a counter.
pub fn nft_counters(json: &str, out: &mut Counters) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return;
    };
    for item in v
        .get("nftables")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
    {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let Some(label) = rule.get("comment").and_then(|c| c.as_str()) else {
            continue;
        };
        let counter = rule
            .get("expr")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .find_map(|e| e.get("counter"));
        if let Some(c) = counter {
            let n = |k: &str| c.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            add(out, label, n("packets"), n("bytes"));
        }
    }
}

/// From `iptables-save -c`: `[packets:bytes] -A chain ... --comment "label" ...`.
pub fn ipt_counters(save: &str, out: &mut Counters) {
    for l in save.lines() {
        let Some(rest) = l.strip_prefix('[') else {
            continue;
        };
        let Some((nums, rule)) = rest.split_once("] ") else {
            continue;
        };
        if !rule.starts_with("-A brindle-") {
            continue;
        }
        let Some((p, b)) = nums.split_once(':') else {
            continue;
        };
        let label = rule.split_once("--comment ").map(|(_, c)| {
            if let Some(q) = c.strip_prefix('"') {
                q.split('"').next().unwrap_or("")
            } else {
                c.split(' ').next().unwrap_or("")
            }
        });
        if let (Some(label), Ok(p), Ok(b)) = (label, p.parse(), b.parse()) {
            add(out, label, p, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_sum_by_label() {
        let mut c = Counters::new();
        nft_counters(
            r#"{"nftables": [{"metainfo": {}}, {"rule": {"family": "inet", "table": "brindle", "chain": "p-1-i", "comment": "default/x ingress[0]", "expr": [{"match": {}}, {"counter": {"packets": 3, "bytes": 180}}, {"accept": null}]}}, {"rule": {"chain": "p-1-i", "comment": "default/x ingress[0]", "expr": [{"counter": {"packets": 1, "bytes": 80}}]}}]}"#,
            &mut c,
        );
        ipt_counters(
            "*filter\n:brindle-pi-1 - [0:0]\n[5:300] -A brindle-pi-1 -p 6 -m comment --comment \"default/x ingress[0]\" -j MARK --set-xmark 0x10000/0x10000\n[5:300] -A brindle-pi-1 -m mark --mark 0x10000/0x10000 -j RETURN\n[2:100] -A brindle-pi-1 -m comment --comment failsafe -j ACCEPT\nCOMMIT\n",
            &mut c,
        );
        assert_eq!(c["default/x ingress[0]"], (9, 560));
        assert_eq!(c["failsafe"], (2, 100));
        assert_eq!(c.len(), 2);
    }
}
