//! The pod's wiring through rtnetlink: a veth pair whose host end stays in the host namespace
//! and whose other end becomes the pod's interface, the pod's addresses and routes, the host
//! route and sysctls. Every call runs on a dedicated thread (setns is per thread) with its own
//! netlink socket in the namespace it needs; nothing here runs on a shared runtime worker.
//!
//! Pod side (as Calico wires it): `eth0` with `/32` (`/128`) addresses, `169.254.1.1 dev eth0
//! scope link`, `default via 169.254.1.1 dev eth0`; IPv6 `default via fe80::ecee:eeff:feee:eeee
//! dev eth0`, DAD off, permanent neighbour entries for both gateways. Host side: MAC ee:ee:ee:ee:ee:ee, proxy ARP (and proxy NDP), a route per
//! address `dev caliX scope link` with Brindle's protocol (80).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::NeighbourState;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// Brindle's route protocol number.
pub const ROUTE_PROTOCOL: u8 = 80;
/// The host side's MAC (and the pod's gateway MAC).
pub const HOST_MAC: [u8; 6] = [0xee; 6];
/// The pod's IPv4 gateway.
pub const GW4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pod's IPv6 gateway: the link-local address of the host side's MAC.
pub const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// A netlink failure, naming what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct NlError {
    /// The step.
    pub what: String,
    /// The kernel's or the library's answer.
    pub reason: String,
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NlError {
    let what = what.into();
    move |e| NlError {
        what,
        reason: e.to_string(),
    }
}

fn err(what: impl Into<String>, reason: impl ToString) -> NlError {
    NlError {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// Runs `f` with a netlink handle inside network namespace `netns` (None: the caller's own),
/// on a new thread with its own single-threaded runtime.
pub fn run_in<T, F, Fut>(netns: Option<&Path>, f: F) -> Result<T, NlError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NlError>>,
{
    let netns: Option<PathBuf> = netns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        if let Some(p) = &netns {
            let file = std::fs::File::open(p)
                .map_err(|e| err(format!("open netns {}", p.display()), e))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| err(format!("enter netns {}", p.display()), e))?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err("runtime", e))?;
        rt.block_on(async move {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| err("netlink socket", e))?;
            tokio::spawn(conn);
            f(handle).await
        })
    })
    .join()
    .map_err(|_| err("netlink thread", "panicked"))?
}

/// Writes a sysctl of the calling thread's namespace.
pub fn sysctl(path: &str, value: &str) -> Result<(), NlError> {
    std::fs::write(format!("/proc/sys/{path}"), value).map_err(|e| err(format!("sysctl {path}"), e))
}

/// The index of interface `name`, if it exists.
pub async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>, NlError> {
    Ok(link(h, name).await?.map(|l| l.header.index))
}

/// Interface `name`, if it exists.
pub async fn link(h: &Handle, name: &str) -> Result<Option<LinkMessage>, NlError> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(l) => Ok(l),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc_enodev() => Ok(None),
        Err(e) => Err(nl(format!("look up {name}"))(e)),
    }
}

const fn libc_enodev() -> i32 {
    19
}

/// The MAC of a link message.
pub fn mac_of(l: &LinkMessage) -> Option<String> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) if m.len() == 6 => Some(
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    })
}

/// What ADD asks for.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// The pod's namespace (`CNI_NETNS`).
    pub netns: PathBuf,
    /// The host side's name (`caliXXXXXXXXXXX`).
    pub host_if: String,
    /// The pod side's name (`CNI_IFNAME`).
    pub pod_if: String,
    /// MTU of both sides.
    pub mtu: u32,
    /// The pod's addresses.
    pub ips: Vec<IpAddr>,
}

/// Creates the veth pair and wires both sides; returns the pod interface's MAC. On failure
/// the veth is deleted (deleting either end removes both) before the error is returned.
pub fn wire(w: &Wiring) -> Result<String, NlError> {
    let tmp = format!("tmp{}", &w.host_if[w.host_if.len().saturating_sub(8)..]);
    let w2 = w.clone();
    // Only what this call created is undone: an existing interface of that name (another
    // attachment's) is never deleted.
    let created = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let created2 = created.clone();
    let res = (|| {
        let netns_file = std::fs::File::open(&w.netns)
            .map_err(|e| err(format!("open netns {}", w.netns.display()), e))?;
        let fd = netns_file.as_raw_fd();
        let (host_if, tmp2, mtu) = (w.host_if.clone(), tmp.clone(), w.mtu);
        run_in(None, move |h| async move {
            // The pod's end is made in the pod's namespace directly: moving an interface
            // between namespaces afterwards waits for an RCU grace period (about 20 ms here).
            let peer = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
                .name(tmp2.clone())
                .mtu(mtu)
                .setns_by_fd(fd)
                .build();
            h.link()
                .add(
                    LinkVeth::new(&host_if, &tmp2)
                        .mtu(mtu)
                        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                        .build(),
                )
                .execute()
                .await
                .map_err(nl(format!("create veth {host_if}")))?;
            created2.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })?;
        drop(netns_file);
        let (tmp3, w3) = (tmp.clone(), w2.clone());
        let mac = run_in(Some(&w.netns), move |h| async move {
            wire_pod(&h, &tmp3, &w3).await
        })?;
        let w4 = w2.clone();
        run_in(None, move |h| async move { wire_host(&h, &w4).await })?;
        Ok(mac)
    })();
    // Deleting the host end removes the pair, wherever the other end is and whatever its name.
    if res.is_err() && created.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = unwire(&w.host_if);
    }
    res
}

async fn wire_pod(h: &Handle, tmp: &str, w: &Wiring) -> Result<String, NlError> {
    let idx = link_index(h, tmp)
        .await?
        .ok_or_else(|| err("pod side", "not found in the pod namespace"))?;
    h.link()
        .set(
            LinkUnspec::new_with_index(idx)
                .name(w.pod_if.clone())
                .mtu(w.mtu)
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("rename to {}", w.pod_if)))?;
    if w.ips.iter().any(IpAddr::is_ipv6) {
        // Before the link comes up, so the address is usable at once.
        sysctl(&format!("net/ipv6/conf/{}/accept_dad", w.pod_if), "0")?;
    }
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl(format!("set {} up", w.pod_if)))?;
    for ip in &w.ips {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        h.address()
            .add(idx, *ip, len)
            .execute()
            .await
            .map_err(nl(format!("add {ip}/{len} to {}", w.pod_if)))?;
    }
    // The gateways resolve to the host side's fixed MAC without asking (proxy ARP/NDP on the
    // host answers too, but only when the host has a route back to 169.254.1.1).
    for (v6, gw) in [(false, IpAddr::V4(GW4)), (true, IpAddr::V6(GW6))] {
        if w.ips.iter().any(|ip| ip.is_ipv6() == v6) {
            h.neighbours()
                .add(idx, gw)
                .link_layer_address(&HOST_MAC)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await
                .map_err(nl(format!("add the neighbour entry for {gw}")))?;
        }
    }
    let mut routes = Vec::new();
    if w.ips.iter().any(IpAddr::is_ipv4) {
        let link_route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(GW4, 32)
            .scope(RouteScope::Link);
        let default = RouteMessageBuilder::<Ipv4Addr>::new().gateway(GW4);
        routes.push(("the 169.254.1.1 route", finish_route(link_route, idx)));
        routes.push(("the IPv4 default route", finish_route(default, idx)));
    }
    if w.ips.iter().any(IpAddr::is_ipv6) {
        let default = RouteMessageBuilder::<Ipv6Addr>::new().gateway(GW6);
        routes.push(("the IPv6 default route", finish_route(default, idx)));
    }
    for (what, r) in routes {
        h.route()
            .add(r)
            .execute()
            .await
            .map_err(nl(format!("add {what}")))?;
    }
    let l = link(h, &w.pod_if)
        .await?
        .ok_or_else(|| err("pod side", "vanished"))?;
    mac_of(&l).ok_or_else(|| err("pod side", "has no MAC"))
}

/// A pod route through `eth0`, marked as `ip route add` would (protocol boot).
fn finish_route<T>(b: RouteMessageBuilder<T>, idx: u32) -> RouteMessage {
    b.output_interface(idx)
        .protocol(RouteProtocol::Boot)
        .build()
}

async fn wire_host(h: &Handle, w: &Wiring) -> Result<(), NlError> {
    let idx = link_index(h, &w.host_if)
        .await?
        .ok_or_else(|| err("host side", "vanished"))?;
    h.link()
        .set(
            LinkUnspec::new_with_index(idx)
                .address(HOST_MAC.to_vec())
                .mtu(w.mtu)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("set {} up", w.host_if)))?;
    if w.ips.iter().any(IpAddr::is_ipv4) {
        sysctl(&format!("net/ipv4/conf/{}/proxy_arp", w.host_if), "1")?;
        sysctl(&format!("net/ipv4/neigh/{}/proxy_delay", w.host_if), "0")?;
        sysctl("net/ipv4/ip_forward", "1")?;
    }
    if w.ips.iter().any(IpAddr::is_ipv6) {
        sysctl(&format!("net/ipv6/conf/{}/proxy_ndp", w.host_if), "1")?;
        sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    for ip in &w.ips {
        if let Some(other) = route_owner(h, *ip).await?
            && other != idx
        {
            return Err(err(
                format!("host route for {ip}"),
                format!("another interface (index {other}) already routes this address"),
            ));
        }
        h.route()
            .add(host_route(*ip, idx))
            .replace()
            .execute()
            .await
            .map_err(nl(format!("add the host route for {ip}")))?;
    }
    Ok(())
}

fn host_route(ip: IpAddr, idx: u32) -> RouteMessage {
    let b = RouteMessageBuilder::<IpAddr>::new();
    let b = match b.destination_prefix(ip, if ip.is_ipv4() { 32 } else { 128 }) {
        Ok(b) => b,
        Err(_) => RouteMessageBuilder::<IpAddr>::new(),
    };
    b.output_interface(idx)
        .scope(RouteScope::Link)
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
        .build()
}

/// The interface index of the main-table host route for exactly `ip` (a /32 or /128), if any.
pub async fn route_owner(h: &Handle, ip: IpAddr) -> Result<Option<u32>, NlError> {
    let req = match ip {
        IpAddr::V4(_) => RouteMessageBuilder::<Ipv4Addr>::new().build(),
        IpAddr::V6(_) => RouteMessageBuilder::<Ipv6Addr>::new().build(),
    };
    let want_len = if ip.is_ipv4() { 32 } else { 128 };
    let mut s = h.route().get(req).execute();
    while let Some(m) = s.try_next().await.map_err(nl("dump routes"))? {
        if m.header.destination_prefix_length != want_len {
            continue;
        }
        let dst = m.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
            _ => None,
        });
        if dst != Some(ip) {
            continue;
        }
        return Ok(m.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        }));
    }
    Ok(None)
}

/// Every `cali*` interface of the calling namespace with the addresses routed to it (/32 and
/// /128 routes whose output interface it is).
pub fn cali_links() -> Result<Vec<(String, Vec<IpAddr>)>, NlError> {
    run_in(None, |h| async move {
        let mut links = Vec::new();
        let mut s = h.link().get().execute();
        while let Some(l) = s.try_next().await.map_err(nl("dump links"))? {
            let name = l.attributes.iter().find_map(|a| match a {
                netlink_packet_route::link::LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            if let Some(n) = name.filter(|n| n.starts_with("cali")) {
                links.push((l.header.index, n, Vec::new()));
            }
        }
        for req in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let mut s = h.route().get(req).execute();
            while let Some(m) = s.try_next().await.map_err(nl("dump routes"))? {
                if !matches!(m.header.destination_prefix_length, 32 | 128) {
                    continue;
                }
                let dst = m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                    _ => None,
                });
                let oif = m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                });
                if let (Some(d), Some(o)) = (dst, oif)
                    && let Some(l) = links.iter_mut().find(|l| l.0 == o)
                {
                    l.2.push(d);
                }
            }
        }
        Ok(links.into_iter().map(|(_, n, a)| (n, a)).collect())
    })
}

/// Deletes the host side (and with it the pod side). Already gone is success.
pub fn unwire(host_if: &str) -> Result<(), NlError> {
    let name = host_if.to_string();
    run_in(None, move |h| async move {
        if let Some(i) = link_index(&h, &name).await? {
            match h.link().del(i).execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc_enodev() => {}
                Err(e) => return Err(nl(format!("delete {name}"))(e)),
            }
        }
        Ok(())
    })
}

/// What CHECK finds on the host.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    /// The host side exists.
    pub host_if: Option<u32>,
    /// Per address, the interface routing it.
    pub routes: Vec<(IpAddr, Option<u32>)>,
}

/// What CHECK finds in the pod.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    /// The pod interface exists.
    pub exists: bool,
    /// Its MAC.
    pub mac: Option<String>,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
    /// A default route through it exists (IPv4, IPv6).
    pub default4: bool,
    /// IPv6 default route.
    pub default6: bool,
}

/// Reads the host side.
pub fn host_view(host_if: &str, ips: &[IpAddr]) -> Result<HostView, NlError> {
    let (name, ips) = (host_if.to_string(), ips.to_vec());
    run_in(None, move |h| async move {
        let mut v = HostView {
            host_if: link_index(&h, &name).await?,
            ..Default::default()
        };
        for ip in ips {
            v.routes.push((ip, route_owner(&h, ip).await?));
        }
        Ok(v)
    })
}

/// Reads the pod side.
pub fn pod_view(netns: &Path, pod_if: &str) -> Result<PodView, NlError> {
    let name = pod_if.to_string();
    run_in(Some(netns), move |h| async move {
        let Some(l) = link(&h, &name).await? else {
            return Ok(PodView::default());
        };
        let idx = l.header.index;
        let mut v = PodView {
            exists: true,
            mac: mac_of(&l),
            ..Default::default()
        };
        let mut s = h.address().get().set_link_index_filter(idx).execute();
        while let Some(m) = s.try_next().await.map_err(nl("dump addresses"))? {
            for a in &m.attributes {
                if let netlink_packet_route::address::AddressAttribute::Address(ip) = a {
                    v.addrs.push(*ip);
                }
            }
        }
        for v6 in [false, true] {
            let req = if v6 {
                RouteMessageBuilder::<Ipv6Addr>::new().build()
            } else {
                RouteMessageBuilder::<Ipv4Addr>::new().build()
            };
            let mut s = h.route().get(req).execute();
            while let Some(m) = s.try_next().await.map_err(nl("dump routes"))? {
                let oif = m
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == idx));
                if m.header.destination_prefix_length == 0 && oif {
                    if v6 {
                        v.default6 = true;
                    } else {
                        v.default4 = true;
                    }
                }
            }
        }
        Ok(v)
    })
}
