//! Pure pool selection: which pools may serve an allocation for a node. No I/O.

use std::collections::BTreeMap;

use brindle_crds::IPPool;
use brindle_crds::ippool::{AllowedUse, AssignmentMode};
use brindle_selector::Selector;
use ipnetwork::IpNetwork;

/// A pool that may serve the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The pool's name.
    pub name: String,
    /// Its CIDR.
    pub net: IpNetwork,
    /// Its block prefix length.
    pub block_size: u8,
}

/// Picks the pools of one family that may serve `node`: the `requested` ones (by name or
/// CIDR) when given, else every enabled, automatic pool allowing `use_` whose `nodeSelector`
/// matches the node's labels. Refusals are explained in the error.
pub fn eligible(
    pools: &[IPPool],
    v4: bool,
    node_labels: &BTreeMap<String, String>,
    requested: &[String],
    use_: AllowedUse,
) -> Result<Vec<Candidate>, String> {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    let wanted = |p: &IPPool| {
        requested.is_empty()
            || requested
                .iter()
                .any(|r| Some(r.as_str()) == p.metadata.name.as_deref() || *r == p.spec.cidr)
    };
    for r in requested {
        if !pools
            .iter()
            .any(|p| Some(r.as_str()) == p.metadata.name.as_deref() || *r == p.spec.cidr)
        {
            refused.push(format!("requested pool '{r}' does not exist"));
        }
    }
    for p in pools.iter().filter(|p| wanted(p)) {
        let name = p.metadata.name.clone().unwrap_or_default();
        let Some(net) = p.spec.network() else {
            continue;
        };
        if net.is_ipv4() != v4 {
            if !requested.is_empty() {
                refused.push(format!("{name} is not IPv{}", if v4 { 4 } else { 6 }));
            }
            continue;
        }
        if p.spec.disabled {
            refused.push(format!("{name} is disabled"));
            continue;
        }
        if !p.spec.allowed_uses.contains(&use_) {
            refused.push(format!("{name} does not allow {use_:?}"));
            continue;
        }
        if requested.is_empty() && p.spec.assignment_mode == AssignmentMode::Manual {
            continue;
        }
        match Selector::parse(&p.spec.node_selector) {
            Ok(sel) if sel.matches(node_labels) => {}
            Ok(_) => {
                refused.push(format!("{name}'s nodeSelector does not match the node"));
                continue;
            }
            Err(e) => {
                refused.push(format!("{name} has an invalid nodeSelector: {e}"));
                continue;
            }
        }
        out.push(Candidate {
            name,
            net,
            block_size: p.spec.effective_block_size(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if out.is_empty() || (!requested.is_empty() && !refused.is_empty()) {
        if refused.is_empty() {
            refused.push("no pool of this family exists".into());
        }
        return Err(refused.join("; "));
    }
    Ok(out)
}
