//! Registers this node: creates or updates its `Node` with the detected addresses and AS,
//! keeping what is stored when detection yields nothing, and refusing to start when another
//! Node already holds the address (naming that node).

use brindle_crds::common::AsNumber;
use brindle_crds::node::NodeBgpSpec;
use brindle_crds::{Node, NodeSpec, Resource};
use brindle_datastore::{Datastore, Error as DsError, Key, Kind, RetryPolicy, retry_on_conflict};
use ipnetwork::IpNetwork;

use crate::Error;
use crate::desired::node_addrs;

/// What to register.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// The node's name.
    pub name: String,
    /// The detected IPv4 address (None: keep what is stored).
    pub ipv4: Option<IpNetwork>,
    /// The detected IPv6 address.
    pub ipv6: Option<IpNetwork>,
    /// Remove the stored IPv6 address (method `none`).
    pub clear_ipv6: bool,
    /// The node's AS (None: keep what is stored).
    pub as_number: Option<u32>,
}

/// The Node as registration leaves it (pure).
pub fn updated(current: Option<&Node>, reg: &Registration) -> Node {
    let mut n = current.cloned().unwrap_or_else(|| {
        let mut n = Node::new(&reg.name, NodeSpec::default());
        n.metadata.name = Some(reg.name.clone());
        n
    });
    let bgp = n.spec.bgp.get_or_insert_with(NodeBgpSpec::default);
    if let Some(a) = reg.ipv4 {
        bgp.ipv4_address = Some(a.to_string());
    }
    if let Some(a) = reg.ipv6 {
        bgp.ipv6_address = Some(a.to_string());
    } else if reg.clear_ipv6 {
        bgp.ipv6_address = None;
    }
    if let Some(asn) = reg.as_number {
        bgp.as_number = Some(AsNumber(asn));
    }
    n
}

/// Checks that no other node holds `node`'s addresses.
pub fn check_conflicts<'a>(
    node: &Node,
    others: impl IntoIterator<Item = &'a Node>,
) -> Result<(), Error> {
    let (m4, m6) = node_addrs(node);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    for o in others {
        let oname = o.metadata.name.as_deref().unwrap_or_default();
        if oname == name {
            continue;
        }
        let (o4, o6) = node_addrs(o);
        for (mine, theirs) in [(m4, o4), (m6, o6)] {
            if let (Some(a), Some(b)) = (mine, theirs)
                && a.ip() == b.ip()
            {
                return Err(Error::AddressInUse {
                    address: a.ip().to_string(),
                    other: oname.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Creates or updates the Node; returns it as stored.
pub async fn register(ds: &Datastore, reg: &Registration) -> Result<Node, Error> {
    let others: Vec<Node> = ds
        .list(Kind::Node, None, None)
        .await?
        .into_iter()
        .filter_map(|r| match r {
            Resource::Node(n) => Some(n),
            _ => None,
        })
        .collect();
    let key = Key::new(Kind::Node, reg.name.clone());
    let current = others
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(reg.name.as_str()));
    let want = updated(current, reg);
    check_conflicts(&want, &others)?;
    if node_addrs(&want).0.is_none() {
        return Err(Error::Config {
            field: format!("Node/{}", reg.name),
            reason: "no IPv4 address was detected or stored (give --ip ADDR/LEN or a method)"
                .into(),
        });
    }
    let stored = retry_on_conflict(&RetryPolicy::default(), &key.to_string(), || async {
        match ds.get(&key).await {
            Err(DsError::NotFound { .. }) => ds.create(&Resource::Node(updated(None, reg))).await,
            Err(e) => Err(e),
            Ok(Resource::Node(cur)) => {
                let next = updated(Some(&cur), reg);
                if next == cur {
                    return Ok(Resource::Node(cur));
                }
                ds.update(&Resource::Node(next)).await
            }
            Ok(other) => Err(DsError::Internal(format!(
                "{} is not a Node",
                other.display_name()
            ))),
        }
    })
    .await?;
    match stored {
        Resource::Node(n) => {
            tracing::info!(target: "node.register", node = %reg.name, ipv4 = ?n.spec.bgp.as_ref().and_then(|b| b.ipv4_address.clone()), "registered");
            Ok(n)
        }
        _ => Err(Error::Io("the datastore returned another kind".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, v4: &str) -> Node {
        updated(
            None,
            &Registration {
                name: name.into(),
                ipv4: Some(v4.parse().unwrap()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn keeps_stored_address_when_nothing_detected() {
        let a = node("a", "198.18.0.1/24");
        let b = updated(
            Some(&a),
            &Registration {
                name: "a".into(),
                as_number: Some(65001),
                ..Default::default()
            },
        );
        assert_eq!(node_addrs(&b).0, node_addrs(&a).0);
        assert_eq!(b.spec.bgp.unwrap().as_number, Some(AsNumber(65001)));
    }

    #[test]
    fn conflict_names_the_other_node() {
        let a = node("a", "198.18.0.1/24");
        let b = node("b", "198.18.0.1/24");
        let e = check_conflicts(&a, [&b, &a]).unwrap_err().to_string();
        assert!(e.contains("Node b") && e.contains("198.18.0.1"), "{e}");
        let c = node("c", "198.18.0.3/24");
        assert!(check_conflicts(&a, [&c]).is_ok());
    }
}
