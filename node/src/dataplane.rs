//! The tunnel and route driver: makes the kernel match a [`RoutePlan`]: the VXLAN device
//! (VNI 4096, port 4789, local = the node's address, learning off, MAC derived from the node
//! name, the tunnel address /32), permanent neighbour and FDB entries per remote VTEP, and the
//! routes of remote blocks (`via VTEP dev vxlan.brindle onlink`, `via NODE dev tunl0 onlink`, or
//! `via NODE`). It reads the kernel back each time and changes only the difference, so a route
//! or entry someone deleted is put back at the next reconcile. Its routes carry Brindle's
//! protocol (80) and its own metric ([`ROUTE_METRIC`]): other routes are never touched.
//!
//! One owner: the daemon's loop calls [`Driver::reconcile`]; nothing else holds the socket.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use crate::Error;
use crate::tunnels::{
    IPIP_DEVICE, RoutePlan, RouteVia, VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI, parse_mac,
};

/// Brindle's route protocol number.
pub const ROUTE_PROTOCOL: u8 = 80;
/// The metric of the driver's routes (the speaker's are 32, pod routes 0).
pub const ROUTE_METRIC: u32 = 16;
/// MTU of the VXLAN device (1500 less 50 bytes of encapsulation).
pub const VXLAN_MTU: u32 = 1450;

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |e| Error::Io(format!("netlink: {what}: {e}"))
}

/// A route's gateway and output interface, as read back.
type NextHop = (Option<Ipv4Addr>, Option<u32>);

/// What one reconcile changed or could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Changes made (for logs).
    pub changed: Vec<String>,
    /// Problems (for logs and status), e.g. a missing kernel module.
    pub problems: Vec<String>,
}

/// The driver: one netlink socket in the daemon's namespace.
#[derive(Debug)]
pub struct Driver {
    h: Handle,
}

impl Driver {
    /// Opens the netlink socket (in the calling thread's namespace).
    pub fn open() -> Result<Driver, Error> {
        let (conn, h, _) =
            rtnetlink::new_connection().map_err(|e| Error::Io(format!("netlink socket: {e}")))?;
        tokio::spawn(conn);
        Ok(Driver { h })
    }

    async fn link(
        &self,
        name: &str,
    ) -> Result<Option<netlink_packet_route::link::LinkMessage>, Error> {
        let mut s = self.h.link().get().match_name(name.to_string()).execute();
        match s.try_next().await {
            Ok(l) => Ok(l),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == 19 => Ok(None),
            Err(e) => Err(nl(format!("look up {name}"))(e)),
        }
    }

    /// Makes the kernel match `plan`.
    pub async fn reconcile(&self, plan: &RoutePlan) -> Report {
        let mut r = Report::default();
        let vx = match self.vxlan(plan, &mut r).await {
            Ok(i) => i,
            Err(e) => {
                r.problems.push(e.to_string());
                None
            }
        };
        let tunl = if plan.ipip {
            match self.link(IPIP_DEVICE).await {
                Ok(Some(l)) => {
                    let idx = l.header.index;
                    let _ = self
                        .h
                        .link()
                        .set(LinkUnspec::new_with_index(idx).mtu(1480).up().build())
                        .execute()
                        .await;
                    Some(idx)
                }
                Ok(None) => {
                    r.problems.push(format!(
                        "an IPIP pool needs {IPIP_DEVICE}, which this kernel lacks (no ipip module): \
                         its routes are not installed (never routed without encapsulation)"
                    ));
                    None
                }
                Err(e) => {
                    r.problems.push(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        if let Err(e) = self.routes(plan, vx, tunl, &mut r).await {
            r.problems.push(e.to_string());
        }
        r
    }

    /// The VXLAN device, its address, neighbour and FDB entries; returns its index.
    async fn vxlan(&self, plan: &RoutePlan, r: &mut Report) -> Result<Option<u32>, Error> {
        let existing = self.link(VXLAN_DEVICE).await?;
        let Some(v) = &plan.vxlan else {
            if let Some(l) = existing {
                self.h
                    .link()
                    .del(l.header.index)
                    .execute()
                    .await
                    .map_err(nl("delete the VXLAN device"))?;
                r.changed.push(format!("deleted {VXLAN_DEVICE}"));
            }
            return Ok(None);
        };
        let mac = parse_mac(&v.mac).unwrap_or_default();
        let matches = existing.as_ref().is_some_and(|l| vxlan_matches(l, v.local));
        if let (Some(l), false) = (&existing, matches) {
            self.h
                .link()
                .del(l.header.index)
                .execute()
                .await
                .map_err(nl("replace the VXLAN device"))?;
            r.changed.push(format!(
                "replaced {VXLAN_DEVICE} (its VNI, port or local address differed)"
            ));
        }
        if !matches {
            self.h
                .link()
                .add(
                    LinkVxlan::new(VXLAN_DEVICE, VXLAN_VNI)
                        .port(VXLAN_PORT)
                        .local(v.local)
                        .learning(false)
                        .build(),
                )
                .execute()
                .await
                .map_err(nl("create the VXLAN device"))?;
            r.changed.push(format!(
                "created {VXLAN_DEVICE} (VNI {VXLAN_VNI}, local {})",
                v.local
            ));
        }
        let l = self
            .link(VXLAN_DEVICE)
            .await?
            .ok_or_else(|| Error::Io(format!("{VXLAN_DEVICE} vanished")))?;
        let idx = l.header.index;
        let has_mac = l
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Address(m) if m.as_slice() == mac));
        let up = l
            .header
            .flags
            .contains(netlink_packet_route::link::LinkFlags::Up);
        if !has_mac || !up {
            self.h
                .link()
                .set(
                    LinkUnspec::new_with_index(idx)
                        .address(mac.to_vec())
                        .mtu(VXLAN_MTU)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(nl("set up the VXLAN device"))?;
        }
        // Exactly the tunnel address.
        let mut have = Vec::new();
        let mut s = self.h.address().get().set_link_index_filter(idx).execute();
        while let Some(m) = s.try_next().await.map_err(nl("dump addresses"))? {
            if m.header.family == AddressFamily::Inet {
                for a in &m.attributes {
                    if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                        have.push((*ip, m.clone()));
                    }
                }
            }
        }
        for (ip, m) in &have {
            if *ip != v.address {
                self.h
                    .address()
                    .del(m.clone())
                    .execute()
                    .await
                    .map_err(nl("remove a stale tunnel address"))?;
            }
        }
        if !have.iter().any(|(ip, _)| *ip == v.address) {
            self.h
                .address()
                .add(idx, IpAddr::V4(v.address), 32)
                .execute()
                .await
                .map_err(nl("add the tunnel address"))?;
            r.changed
                .push(format!("{VXLAN_DEVICE} address {}", v.address));
        }
        self.neighbours(plan, idx, r).await?;
        Ok(Some(idx))
    }

    async fn neighbours(&self, plan: &RoutePlan, idx: u32, r: &mut Report) -> Result<(), Error> {
        // ARP: VTEP address → VTEP MAC.
        let want_arp: BTreeMap<Ipv4Addr, [u8; 6]> = plan
            .vteps
            .iter()
            .filter_map(|(a, v)| Some((*a, parse_mac(&v.mac)?)))
            .collect();
        // FDB: VTEP MAC → node address.
        let want_fdb: BTreeMap<[u8; 6], Ipv4Addr> = plan
            .vteps
            .values()
            .filter_map(|v| Some((parse_mac(&v.mac)?, v.node_ip)))
            .collect();
        let mut have_arp: BTreeMap<
            Ipv4Addr,
            ([u8; 6], netlink_packet_route::neighbour::NeighbourMessage),
        > = BTreeMap::new();
        let mut have_fdb: BTreeMap<
            [u8; 6],
            (
                Option<Ipv4Addr>,
                netlink_packet_route::neighbour::NeighbourMessage,
            ),
        > = BTreeMap::new();
        for fam in [AddressFamily::Inet, AddressFamily::Bridge] {
            let mut s = self.h.neighbours().get().set_address_family(fam).execute();
            while let Some(m) = s.try_next().await.map_err(nl("dump neighbours"))? {
                if m.header.ifindex != idx || m.header.state != NeighbourState::Permanent {
                    continue;
                }
                let lla = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(l) => {
                        <[u8; 6]>::try_from(l.as_slice()).ok()
                    }
                    _ => None,
                });
                let dst = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                    _ => None,
                });
                match (fam, lla, dst) {
                    (AddressFamily::Inet, Some(l), Some(d)) => {
                        have_arp.insert(d, (l, m));
                    }
                    (AddressFamily::Bridge, Some(l), d) if l != [0; 6] => {
                        have_fdb.insert(l, (d, m));
                    }
                    _ => {}
                }
            }
        }
        for (ip, (mac, m)) in &have_arp {
            if want_arp.get(ip) != Some(mac) {
                let _ = self.h.neighbours().del(m.clone()).execute().await;
            }
        }
        for (ip, mac) in &want_arp {
            if have_arp.get(ip).map(|h| &h.0) != Some(mac) {
                self.h
                    .neighbours()
                    .add(idx, IpAddr::V4(*ip))
                    .link_layer_address(mac)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await
                    .map_err(nl(format!("neighbour {ip}")))?;
                r.changed.push(format!("neighbour {ip}"));
            }
        }
        for (mac, (dst, m)) in &have_fdb {
            if want_fdb.get(mac) != dst.as_ref() {
                let _ = self.h.neighbours().del(m.clone()).execute().await;
            }
        }
        for (mac, ip) in &want_fdb {
            if have_fdb.get(mac).and_then(|h| h.0) != Some(*ip) {
                self.h
                    .neighbours()
                    .add_bridge(idx, mac)
                    .destination(IpAddr::V4(*ip))
                    .flags(NeighbourFlags::Own)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await
                    .map_err(nl(format!("fdb entry for {ip}")))?;
                r.changed.push(format!("fdb {ip}"));
            }
        }
        Ok(())
    }

    async fn routes(
        &self,
        plan: &RoutePlan,
        vx: Option<u32>,
        tunl: Option<u32>,
        r: &mut Report,
    ) -> Result<(), Error> {
        // (gateway, interface or None) per block.
        let mut want: BTreeMap<IpNetwork, (Ipv4Addr, Option<u32>)> = BTreeMap::new();
        for (block, via) in &plan.routes {
            let t = match via {
                RouteVia::Vxlan(g) => vx.map(|i| (*g, Some(i))),
                RouteVia::Ipip(g) => tunl.map(|i| (*g, Some(i))),
                RouteVia::Direct(g) => Some((*g, None)),
            };
            if let Some(t) = t {
                want.insert(*block, t);
            }
        }
        let mut have: BTreeMap<IpNetwork, (NextHop, RouteMessage)> = BTreeMap::new();
        let mut s = self
            .h
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        while let Some(m) = s.try_next().await.map_err(nl("dump routes"))? {
            if u8::from(m.header.protocol) != ROUTE_PROTOCOL {
                continue;
            }
            let metric = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Priority(p) => Some(*p),
                _ => None,
            });
            if metric != Some(ROUTE_METRIC) {
                continue;
            }
            let dst = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
                _ => None,
            });
            let gw = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(*a),
                _ => None,
            });
            let oif = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            if let Some(net) = dst.and_then(|d| {
                IpNetwork::new(IpAddr::V4(d), m.header.destination_prefix_length).ok()
            }) {
                have.insert(net, ((gw, oif), m));
            }
        }
        let stale: BTreeSet<IpNetwork> = have
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        for k in stale {
            if let Some((_, m)) = have.remove(&k) {
                let _ = self.h.route().del(m).execute().await;
                r.changed.push(format!("removed route {k}"));
            }
        }
        for (block, (gw, oif)) in want {
            let same = have
                .get(&block)
                .is_some_and(|((g, o), _)| *g == Some(gw) && (oif.is_none() || *o == oif));
            if same {
                continue;
            }
            let IpAddr::V4(net) = block.network() else {
                continue;
            };
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(net, block.prefix())
                .gateway(gw)
                .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
                .priority(ROUTE_METRIC);
            if let Some(i) = oif {
                b = b.output_interface(i).onlink();
            }
            match self.h.route().add(b.build()).replace().execute().await {
                Ok(()) => r.changed.push(format!("route {block} via {gw}")),
                Err(e) => r.problems.push(format!("route {block} via {gw}: {e}")),
            }
        }
        Ok(())
    }
}

fn vxlan_matches(l: &netlink_packet_route::link::LinkMessage, local: Ipv4Addr) -> bool {
    let Some(info) = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    }) else {
        return false;
    };
    let is_vxlan = info
        .iter()
        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan)));
    let data = info.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vxlan(d)) => Some(d),
        _ => None,
    });
    let Some(d) = data else { return false };
    is_vxlan
        && d.iter()
            .any(|x| matches!(x, InfoVxlan::Id(v) if *v == VXLAN_VNI))
        && d.iter()
            .any(|x| matches!(x, InfoVxlan::Port(p) if *p == VXLAN_PORT))
        && d.iter()
            .any(|x| matches!(x, InfoVxlan::Local(a) if *a == local))
}
