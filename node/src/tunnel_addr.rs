//! The node's VXLAN tunnel address: allocated from IPAM under the handle
//! `vxlan-tunnel-addr-<node>` from a pool that allows tunnel use, kept across restarts,
//! re-allocated when it lies outside every VXLAN pool, released when no pool needs VXLAN; written
//! to the Node (`ipv4VXLANTunnelAddr`, `vxlanTunnelMACAddr`) where every other node reads it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use brindle_crds::ippool::EncapMode;
use brindle_crds::{Kind, Resource};
use brindle_datastore::{Datastore, Error as DsError, Key, RetryPolicy, retry_on_conflict};
use brindle_ipam::{AssignArgs, Ipam};
use ipnetwork::IpNetwork;

use crate::Error;
use crate::cache::Snapshot;
use crate::tunnels::{mac_string, vtep_mac};

/// The IPAM handle of a node's VXLAN tunnel address.
pub fn handle(node: &str) -> String {
    format!("vxlan-tunnel-addr-{node}")
}

/// Makes the node's VXLAN tunnel address match what the pools need. Returns true when it
/// changed the Node.
pub async fn reconcile(ds: &Datastore, snap: &Snapshot, node: &str) -> Result<bool, Error> {
    let vxlan_pools: Vec<IpNetwork> = snap
        .pools()
        .filter(|p| p.spec.vxlan_mode != EncapMode::Never && !p.spec.disabled)
        .filter_map(|p| p.spec.network())
        .filter(IpNetwork::is_ipv4)
        .collect();
    let Some(me) = snap.node(node) else {
        return Ok(false);
    };
    let current: Option<Ipv4Addr> = me
        .spec
        .ipv4_vxlan_tunnel_addr
        .as_deref()
        .and_then(|a| a.parse().ok());
    let ipam = Ipam::new(ds.clone());
    let h = handle(node);
    let keep = current.filter(|a| vxlan_pools.iter().any(|p| p.contains(IpAddr::V4(*a))));
    let want: Option<Ipv4Addr> = if vxlan_pools.is_empty() {
        None
    } else if let Some(a) = keep {
        Some(a)
    } else {
        // Outside every VXLAN pool (or none yet): give back the old one, take a new one.
        ipam.release_by_handle(&h)
            .await
            .map_err(|e| Error::Io(e.to_string()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let got = ipam
            .auto_assign(&AssignArgs {
                handle: h.clone(),
                node: node.to_string(),
                num_v4: 1,
                v4_pools: vxlan_pools.iter().map(ToString::to_string).collect(),
                timestamp: now,
                tunnel: true,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Io(format!("allocating the VXLAN tunnel address: {e}")))?;
        got.v4.first().and_then(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
    };
    if want.is_none() && current.is_some() {
        ipam.release_by_handle(&h)
            .await
            .map_err(|e| Error::Io(e.to_string()))?;
    }
    let mac = want.map(|_| mac_string(&vtep_mac(node)));
    if want == current && me.spec.vxlan_tunnel_mac_addr == mac {
        return Ok(false);
    }
    let key = Key::new(Kind::Node, node);
    retry_on_conflict(&RetryPolicy::default(), &key.to_string(), || async {
        let Resource::Node(mut n) = ds.get(&key).await? else {
            return Err(DsError::Internal(format!("{key} is not a Node")));
        };
        n.spec.ipv4_vxlan_tunnel_addr = want.map(|a| a.to_string());
        n.spec.vxlan_tunnel_mac_addr = mac.clone();
        ds.update(&Resource::Node(n)).await.map(|_| ())
    })
    .await?;
    tracing::info!(target: "node.tunnel", node, address = ?want, "VXLAN tunnel address");
    Ok(true)
}
