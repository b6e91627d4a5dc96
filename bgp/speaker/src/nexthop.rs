//! Next-hop tracking for the core (RFC 4271 §9.1.2.1) and the netlink route monitor.
//!
//! One task owns a netlink socket subscribed to route, address and link changes. For every
//! next hop the core asks about ([`NhCmd::Track`]) it asks the kernel which route it would use
//! (`RTM_GETROUTE` with `RTM_F_FIB_MATCH`): the next hop is reachable when that is a unicast
//! route and not one of the speaker's own (a BGP route must not resolve through BGP routes of
//! ours, which could resolve through themselves). The answer goes to the instance task, and
//! again whenever it changes: any route, address or link change that is not one of our own
//! route writes re-resolves every tracked next hop (debounced), and so does a slow periodic
//! pass in case the monitor lost messages.
//!
//! A socket filter drops the notifications of our own route additions in the kernel (they
//! are most of the traffic when we install a large table). The same monitor tells the kernel task
//! when one of our routes is deleted ([`KernelCmd::Deleted`]: put back at once if still
//! wanted) and when another protocol's route goes ([`KernelCmd::Vacated`]: a prefix that
//! route held against ours gets ours).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{RouteAttribute, RouteFlags, RouteMessage, RouteType};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::{Handle, MulticastGroup, RouteMessageBuilder};
use tokio::sync::mpsc;

use crate::config::KernelConfig;
use crate::error::Error;
use crate::instance::sleep_until;
use crate::kernel::KernelCmd;

/// Changes are gathered this long before the tracked next hops are resolved again.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Every tracked next hop is resolved again this often even without a change seen.
pub const REFRESH: Duration = Duration::from_secs(30);

/// What the instance task asks.
#[derive(Debug)]
pub enum NhCmd {
    /// Resolve and report this next hop, now and on every change.
    Track(IpAddr),
    /// Forget it.
    Untrack(IpAddr),
}

type Monitor = futures::channel::mpsc::UnboundedReceiver<(
    rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// The tracker task's state.
pub struct Tracker {
    handle: Handle,
    monitor: Monitor,
    cfg: KernelConfig,
    tracked: BTreeMap<IpAddr, Resolved>,
    events: mpsc::Sender<crate::instance::Event>,
    kernel: Option<mpsc::UnboundedSender<KernelCmd>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("tracked", &self.tracked)
            .finish_non_exhaustive()
    }
}

/// Reachable, and the resolving route's gateways (empty: directly connected).
type Resolved = (bool, Vec<IpAddr>);

impl Tracker {
    /// Open the monitor socket (in the calling thread's network namespace).
    pub fn open(
        cfg: KernelConfig,
        events: mpsc::Sender<crate::instance::Event>,
        kernel: Option<mpsc::UnboundedSender<KernelCmd>>,
    ) -> Result<Tracker, Error> {
        let (conn, handle, monitor) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
            MulticastGroup::Link,
        ])
        .map_err(|e| Error::Netlink {
            what: "open route monitor",
            reason: e.to_string(),
        })?;
        let mut conn = conn;
        {
            use rtnetlink::sys::AsyncSocket;
            use std::os::fd::AsRawFd;
            let fd = conn.socket_mut().socket_ref().as_raw_fd();
            if let Err(e) = crate::sockopt::drop_own_route_adds(fd, cfg.protocol) {
                tracing::warn!(target: "bgp.nexthop", event = "monitor_filter_failed", error = %e, "our own route writes will be read back and ignored");
            }
        }
        tokio::spawn(conn);
        Ok(Tracker {
            handle,
            monitor,
            cfg,
            tracked: BTreeMap::new(),
            events,
            kernel,
        })
    }

    fn is_ours(&self, m: &RouteMessage) -> bool {
        let metric = m.attributes.iter().find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        });
        let table = m
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(m.header.table));
        u8::from(m.header.protocol) == self.cfg.protocol
            && metric.unwrap_or(0) == self.cfg.metric
            && table == self.cfg.table
    }

    /// Which route the kernel would use for `a`: reachable when it is a unicast route that
    /// is not one of ours, with that route's gateways.
    async fn resolve(&self, a: IpAddr) -> Resolved {
        let len = if a.is_ipv4() { 32 } else { 128 };
        let Ok(b) = RouteMessageBuilder::<IpAddr>::new().destination_prefix(a, len) else {
            return (false, Vec::new());
        };
        let mut m = b.build();
        m.header.flags = RouteFlags::FibMatch;
        let mut s = self.handle.route().get(m).execute();
        let Ok(Some(r)) = s.try_next().await else {
            return (false, Vec::new());
        };
        if r.header.kind != RouteType::Unicast || self.is_ours(&r) {
            return (false, Vec::new());
        }
        (true, crate::kernel::route_gateways(&r))
    }

    async fn report(&self, addr: IpAddr, (reachable, via): Resolved) {
        let _ = self
            .events
            .send(crate::instance::Event::Nexthop {
                addr,
                reachable,
                via,
            })
            .await;
    }

    async fn resolve_all(&mut self) {
        let addrs: Vec<IpAddr> = self.tracked.keys().copied().collect();
        for a in addrs {
            let r = self.resolve(a).await;
            if self.tracked.get(&a).is_some_and(|old| *old != r) {
                tracing::info!(target: "bgp.nexthop", event = "reachability_changed", nexthop = %a, reachable = r.0, via = ?r.1);
                self.tracked.insert(a, r.clone());
                self.report(a, r).await;
            }
        }
    }

    /// Whether a monitor message calls for resolving the next hops again; deletions are also
    /// passed to the kernel task (ours: put back if still wanted; others': maybe a conflict
    /// vacated).
    fn classify(&self, m: &RouteNetlinkMessage) -> bool {
        if let RouteNetlinkMessage::DelRoute(r) = m
            && !self.is_ours(r)
            && let (Some(k), Some(p)) = (&self.kernel, crate::kernel::route_prefix(r))
        {
            // Maybe the route that held this prefix against ours.
            let _ = k.send(KernelCmd::Vacated(p));
        }
        match m {
            RouteNetlinkMessage::NewRoute(r) if self.is_ours(r) => false,
            RouteNetlinkMessage::DelRoute(r) if self.is_ours(r) => {
                if let (Some(k), Some(p)) = (&self.kernel, crate::kernel::route_prefix(r)) {
                    // The kernel task knows whether it deleted this itself.
                    let _ = k.send(KernelCmd::Deleted(p));
                }
                true
            }
            RouteNetlinkMessage::NewRoute(_)
            | RouteNetlinkMessage::DelRoute(_)
            | RouteNetlinkMessage::NewAddress(_)
            | RouteNetlinkMessage::DelAddress(_)
            | RouteNetlinkMessage::NewLink(_)
            | RouteNetlinkMessage::DelLink(_) => true,
            _ => false,
        }
    }

    /// Serve until the command channel closes.
    pub async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<NhCmd>) {
        let mut resolve_due: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut monitor_open = true;
        loop {
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(NhCmd::Track(a)) => {
                        let r = self.resolve(a).await;
                        tracing::debug!(target: "bgp.nexthop", event = "resolved", nexthop = %a, reachable = r.0, via = ?r.1);
                        self.tracked.insert(a, r.clone());
                        self.report(a, r).await;
                    }
                    Some(NhCmd::Untrack(a)) => {
                        self.tracked.remove(&a);
                    }
                    None => return,
                },
                m = self.monitor.next(), if monitor_open => match m {
                    Some((msg, _)) => {
                        if let NetlinkPayload::InnerMessage(inner) = &msg.payload
                            && self.classify(inner)
                            && !self.tracked.is_empty()
                        {
                            resolve_due.get_or_insert(tokio::time::Instant::now() + DEBOUNCE);
                        }
                    }
                    None => {
                        tracing::warn!(target: "bgp.nexthop", event = "monitor_closed", "relying on the periodic pass");
                        monitor_open = false;
                    }
                },
                _ = sleep_until(resolve_due) => {
                    resolve_due = None;
                    self.resolve_all().await;
                }
                _ = tick.tick() => self.resolve_all().await,
            }
        }
    }
}
