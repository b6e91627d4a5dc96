//! Kernel routes through rtnetlink. One task owns the netlink socket; the instance task sends
//! it [`KernelCmd`]s over a channel.
//!
//! Ownership: a route of another protocol at our table and metric is never replaced: our write
//! creates (without replace) unless the prefix's route is known to be ours, and a conflict is
//! reported and retried on the next change. Every route we create carries our route protocol number (80 unless configured)
//! and our metric in our table; a route is ours only when all three match (other Brindle
//! writers use the same protocol with their own metrics). Replacing only matches a route with the same prefix, table and
//! metric; deleting always names our protocol, so the kernel refuses to delete anything else.
//! Deleting a route that is already gone is success.
//!
//! When the route monitor ([`crate::nexthop`]) sees one of our routes deleted that we still
//! want, the task puts it back at once; every [`RESYNC`] it also reads our routes back and puts
//! back any missing (a route of another protocol that took the place stays, reported as a
//! conflict).
//!
//! Graceful restart: at startup the task reads the routes of ours already in the table and
//! leaves them alone (forwarding continues while we restart) until [`KernelCmd::Synced`]; it
//! then deletes those neither re-installed since nor wanted as blackholes.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use brindle_bgp_wire::Prefix;
use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder, RouteNextHopBuilder};
use tokio::sync::{mpsc, oneshot};

use crate::config::KernelConfig;
use crate::error::Error;
use crate::instance::sleep_until;

/// How often the kernel task compares its routes with the kernel's and puts back deleted ones.
pub const RESYNC: std::time::Duration = std::time::Duration::from_secs(10);
/// Route commands taken from the queue at once; their netlink requests are in flight together.
pub const BATCH: usize = 1024;
/// Netlink requests in flight at once.
pub const IN_FLIGHT: usize = 128;
/// First retry of a failed route write; doubled per failure up to [`RETRY_MAX`].
pub const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest wait between retries of a failed route write.
pub const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// The wait before retry number `attempt` (1 = the first) of a failed write.
pub fn retry_delay(attempt: u32) -> std::time::Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1).min(16))
        .unwrap_or(u32::MAX);
    RETRY_FIRST.saturating_mul(factor).min(RETRY_MAX)
}

/// What the kernel task does.
#[derive(Debug)]
pub enum KernelCmd {
    /// Install or replace a route (ECMP when several next hops).
    Install(Prefix, Vec<IpAddr>),
    /// Remove our route for the prefix.
    Remove(Prefix),
    /// Install (true) or remove (false) a blackhole route for an originated prefix.
    Blackhole(Prefix, bool),
    /// Read our routes back from the kernel, with their next hops.
    Read(oneshot::Sender<Result<std::collections::BTreeMap<Prefix, Vec<IpAddr>>, String>>),
    /// The full table has been installed: delete our leftovers from before the restart.
    Synced,
    /// Delete every route of ours, then answer.
    Flush(oneshot::Sender<()>),
    /// Learned routes within these prefixes stay out of the kernel from now on.
    Exclude(Vec<Prefix>),
    /// Another protocol's route for this prefix was deleted: if it held the prefix against
    /// ours (a conflict), try ours now.
    Vacated(Prefix),
    /// One of our routes for this prefix was deleted (the route monitor saw it): put it
    /// back if we still want it (our own deletions are of prefixes no longer wanted).
    Deleted(Prefix),
}

/// One netlink request of a batch.
#[derive(Debug)]
enum Op {
    /// Create (or with `replace`, replace) a route.
    Write { msg: RouteMessage, replace: bool },
    /// Delete our route (repeated for IPv6 siblings until none is left).
    Delete(RouteMessage),
}

/// What a batch entry was for, to settle its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Install,
    Blackhole,
    Delete,
}

async fn execute(handle: Handle, op: Op) -> Result<(), rtnetlink::Error> {
    match op {
        Op::Write { msg, replace } => {
            let req = handle.route().add(msg);
            if replace {
                req.replace().execute().await
            } else {
                req.execute().await
            }
        }
        Op::Delete(msg) => {
            for _ in 0..32 {
                match handle.route().del(msg.clone()).execute().await {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(libc::ESRCH) || errno(&e) == Some(libc::ENOENT) => {
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    }
}

/// The gateways of a route message, its multipath next hops' included, sorted.
pub fn route_gateways(m: &RouteMessage) -> Vec<IpAddr> {
    let gateway = |a: &RouteAttribute| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(IpAddr::V4(*g)),
        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(IpAddr::V6(*g)),
        _ => None,
    };
    let mut out: Vec<IpAddr> = m.attributes.iter().filter_map(gateway).collect();
    for a in &m.attributes {
        if let RouteAttribute::MultiPath(hops) = a {
            out.extend(
                hops.iter()
                    .flat_map(|h| h.attributes.iter().filter_map(gateway)),
            );
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The destination of a route message.
pub fn route_prefix(m: &RouteMessage) -> Option<Prefix> {
    let len = m.header.destination_prefix_length;
    let dst = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => Some(d.clone()),
        _ => None,
    });
    match (m.header.address_family, dst) {
        (AddressFamily::Inet, Some(RouteAddress::Inet(a))) => Prefix::v4(a, len),
        (AddressFamily::Inet6, Some(RouteAddress::Inet6(a))) => Prefix::v6(a, len),
        (AddressFamily::Inet, None) => Prefix::v4(Ipv4Addr::UNSPECIFIED, len),
        (AddressFamily::Inet6, None) => Prefix::v6(Ipv6Addr::UNSPECIFIED, len),
        _ => None,
    }
}

fn nl_err(what: &'static str) -> impl Fn(rtnetlink::Error) -> Error {
    move |e| Error::Netlink {
        what,
        reason: e.to_string(),
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// The kernel task's state.
#[derive(Debug)]
pub struct Kernel {
    handle: Handle,
    cfg: KernelConfig,
    /// Our routes found at startup, until `Synced`.
    leftover: Option<BTreeSet<Prefix>>,
    /// Routes installed since startup.
    installed: BTreeSet<Prefix>,
    /// Blackholes wanted.
    blackholes: BTreeSet<Prefix>,
    /// Prefixes whose kernel route at our table and metric is ours (created by us, or ours
    /// found at startup): only these are ever replaced.
    owned: BTreeSet<Prefix>,
    /// Prefixes held at our metric by a route of another protocol: left alone, reported.
    conflicts: BTreeSet<Prefix>,
    /// Every route the core wants installed (next hops), excluded or not.
    wanted: std::collections::BTreeMap<Prefix, Vec<IpAddr>>,
    /// Learned routes within these prefixes are not installed.
    exclude: Vec<Prefix>,
    /// Counters for metrics.
    stats: std::sync::Arc<crate::fib_stats::FibStats>,
    /// Failed writes: attempts so far and when to try again.
    retry: std::collections::BTreeMap<Prefix, (u32, tokio::time::Instant)>,
}

/// Whether `outer` contains `inner` (same family, shorter or equal, same leading bits).
pub fn prefix_contains(outer: &Prefix, inner: &Prefix) -> bool {
    match (outer, inner) {
        (Prefix::V4(a, l), Prefix::V4(b, m)) => {
            l <= m && Prefix::v4(*b, *l) == Some(Prefix::V4(*a, *l))
        }
        (Prefix::V6(a, l), Prefix::V6(b, m)) => {
            l <= m && Prefix::v6(*b, *l) == Some(Prefix::V6(*a, *l))
        }
        _ => false,
    }
}

impl Kernel {
    /// Open the netlink socket (in the calling thread's network namespace) and read the
    /// routes of ours already present.
    pub async fn open(cfg: KernelConfig) -> Result<Kernel, Error> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::Netlink {
            what: "open socket",
            reason: e.to_string(),
        })?;
        tokio::spawn(conn);
        let mut k = Kernel {
            handle,
            cfg,
            leftover: None,
            installed: BTreeSet::new(),
            blackholes: BTreeSet::new(),
            owned: BTreeSet::new(),
            conflicts: BTreeSet::new(),
            wanted: Default::default(),
            exclude: Vec::new(),
            stats: Default::default(),
            retry: Default::default(),
        };
        let ours = k.ours().await?;
        k.owned = ours.clone();
        k.leftover = Some(ours);
        Ok(k)
    }

    /// The counters this writer keeps (shared with the handle).
    pub fn stats(&self) -> std::sync::Arc<crate::fib_stats::FibStats> {
        self.stats.clone()
    }

    /// The routes of ours found at startup (before any install).
    pub fn leftover(&self) -> BTreeSet<Prefix> {
        self.leftover.clone().unwrap_or_default()
    }

    /// Prefixes of every route in our table with our protocol.
    pub async fn ours(&self) -> Result<BTreeSet<Prefix>, Error> {
        let mut out = BTreeSet::new();
        let reqs = [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ];
        for req in reqs {
            let mut s = self.handle.route().get(req).execute();
            while let Some(m) = s.try_next().await.map_err(nl_err("dump routes"))? {
                if let Some(p) = self.our_prefix(&m) {
                    out.insert(p);
                }
            }
        }
        Ok(out)
    }

    /// Every route of ours in the kernel with its next hops (empty for a blackhole), as the
    /// kernel holds them: the FIB view of the status API.
    pub async fn read(&self) -> Result<std::collections::BTreeMap<Prefix, Vec<IpAddr>>, Error> {
        let mut out: std::collections::BTreeMap<Prefix, Vec<IpAddr>> = Default::default();
        let reqs = [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ];
        for req in reqs {
            let mut s = self.handle.route().get(req).execute();
            while let Some(m) = s.try_next().await.map_err(nl_err("dump routes"))? {
                let Some(p) = self.our_prefix(&m) else {
                    continue;
                };
                let hops = out.entry(p).or_default();
                hops.extend(route_gateways(&m));
                // IPv6 multipath routes come back as siblings, one message per next hop.
                hops.sort();
                hops.dedup();
            }
        }
        Ok(out)
    }

    fn our_prefix(&self, m: &RouteMessage) -> Option<Prefix> {
        if u8::from(m.header.protocol) != self.cfg.protocol {
            return None;
        }
        let table = m
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(m.header.table));
        if table != self.cfg.table {
            return None;
        }
        // Other Brindle writers (pod routes, tunnel routes) share the protocol number with
        // their own metrics; the speaker's routes are the ones with its metric.
        let metric = m
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Priority(p) => Some(*p),
                _ => None,
            })
            .unwrap_or(0);
        if metric != self.cfg.metric {
            return None;
        }
        route_prefix(m)
    }

    fn base(&self, prefix: &Prefix) -> RouteMessageBuilder<IpAddr> {
        let (addr, len) = match *prefix {
            Prefix::V4(a, l) => (IpAddr::V4(a), l),
            Prefix::V6(a, l) => (IpAddr::V6(a), l),
        };
        // The prefix is valid by construction, so this cannot fail.
        let b = RouteMessageBuilder::<IpAddr>::new();
        let b = match b.destination_prefix(addr, len) {
            Ok(b) => b,
            Err(_) => RouteMessageBuilder::<IpAddr>::new(),
        };
        b.table_id(self.cfg.table)
            .protocol(RouteProtocol::from(self.cfg.protocol))
            .priority(self.cfg.metric)
    }

    async fn install(&mut self, prefix: Prefix, nexthops: &[IpAddr]) -> Result<(), Error> {
        let Some(m) = self.install_msg(prefix, nexthops)? else {
            return Ok(());
        };
        if self.write(prefix, m).await? {
            self.installed.insert(prefix);
        }
        Ok(())
    }

    /// The message installing `prefix` via `nexthops` (`None` without next hops).
    fn install_msg(
        &self,
        prefix: Prefix,
        nexthops: &[IpAddr],
    ) -> Result<Option<RouteMessage>, Error> {
        let mut b = self.base(&prefix).kind(RouteType::Unicast);
        let af = match prefix {
            Prefix::V4(..) => AddressFamily::Inet,
            Prefix::V6(..) => AddressFamily::Inet6,
        };
        match nexthops {
            [] => return Ok(None),
            [one] => {
                b = b.gateway(*one).map_err(|e| Error::Netlink {
                    what: "build route",
                    reason: e.to_string(),
                })?;
            }
            many => {
                let mut hops = Vec::new();
                for nh in many {
                    let h = RouteNextHopBuilder::new(af)
                        .via(*nh)
                        .map_err(|e| Error::Netlink {
                            what: "build next hop",
                            reason: e.to_string(),
                        })?;
                    hops.push(h.build());
                }
                b = b.multipath(hops);
            }
        }
        Ok(Some(b.build()))
    }

    /// Apply the route commands of a batch (the last one per prefix wins: each says what the
    /// prefix should be), with up to [`IN_FLIGHT`] netlink requests in flight, then settle
    /// the results.
    async fn apply_routes(
        &mut self,
        routes: std::collections::BTreeMap<Prefix, Option<Vec<IpAddr>>>,
    ) {
        if routes.is_empty() {
            return;
        }
        let mut ops: Vec<(Prefix, Purpose, Op)> = Vec::with_capacity(routes.len());
        for (p, want) in routes {
            match want {
                Some(nh) => {
                    let m = self.install_msg(p, &nh);
                    self.wanted.insert(p, nh);
                    if self.excluded(&p) {
                        continue;
                    }
                    match m {
                        Ok(Some(msg)) => {
                            let replace = self.owned.contains(&p);
                            ops.push((p, Purpose::Install, Op::Write { msg, replace }));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(target: "bgp.kernel", event = "netlink_error", prefix = %p, error = %e)
                        }
                    }
                }
                None => {
                    self.wanted.remove(&p);
                    self.installed.remove(&p);
                    self.retry.remove(&p);
                    if self.blackholes.contains(&p) {
                        let msg = self.base(&p).kind(RouteType::BlackHole).build();
                        let replace = self.owned.contains(&p);
                        ops.push((p, Purpose::Blackhole, Op::Write { msg, replace }));
                    } else {
                        self.conflicts.remove(&p);
                        if self.owned.remove(&p) {
                            ops.push((p, Purpose::Delete, Op::Delete(self.delete_msg(&p))));
                        }
                    }
                }
            }
        }
        let handle = self.handle.clone();
        let results: Vec<_> = futures::stream::iter(ops.into_iter().map(|(p, why, op)| {
            let h = handle.clone();
            async move {
                let t = std::time::Instant::now();
                let r = execute(h, op).await;
                (p, why, r, t.elapsed())
            }
        }))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
        for (p, why, r, took) in results {
            match why {
                Purpose::Install | Purpose::Blackhole => match self.settle_write(p, r, took) {
                    Ok(true) => {
                        if why == Purpose::Install {
                            self.installed.insert(p);
                        }
                        self.retry.remove(&p);
                    }
                    // A conflict is retried when the other route goes (or on resync).
                    Ok(false) => {
                        self.retry.remove(&p);
                    }
                    Err(e) => {
                        // Not (or no longer correctly) installed: the retry must write it.
                        self.installed.remove(&p);
                        self.schedule_retry(p, &e);
                    }
                },
                Purpose::Delete => {
                    if let Err(e) = r {
                        self.stats.failure();
                        let e = nl_err("delete route")(e);
                        tracing::warn!(target: "bgp.kernel", event = "netlink_error", prefix = %p, error = %e);
                    }
                }
            }
        }
        self.stats.set_conflicts(self.conflicts.len());
    }

    /// A write failed: try again after a backoff (1 s doubling to 60 s).
    fn schedule_retry(&mut self, p: Prefix, e: &Error) {
        let attempts = self.retry.get(&p).map_or(0, |r| r.0) + 1;
        let wait = retry_delay(attempts);
        tracing::warn!(target: "bgp.kernel", event = "route_write_failed", prefix = %p, error = %e, attempt = attempts, retry_in_ms = wait.as_millis() as u64);
        self.retry
            .insert(p, (attempts, tokio::time::Instant::now() + wait));
    }

    /// Retry the failed writes that are due.
    async fn retry_due(&mut self) {
        let now = tokio::time::Instant::now();
        let due: Vec<Prefix> = self
            .retry
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(p, _)| *p)
            .collect();
        let mut routes = std::collections::BTreeMap::new();
        for p in due {
            // Pushed back until the attempt below reschedules or clears it, so an entry that
            // makes no request cannot spin.
            if let Some(r) = self.retry.get_mut(&p) {
                r.1 = now + RETRY_MAX;
            }
            match self.wanted.get(&p) {
                Some(nh) if !self.installed.contains(&p) && !self.excluded(&p) => {
                    routes.insert(p, Some(nh.clone()));
                }
                _ => {
                    self.retry.remove(&p);
                }
            }
        }
        self.apply_routes(routes).await;
    }

    /// Writes a route of ours: replaces our own, creates where there is none, and leaves a
    /// route of another protocol at the same table and metric alone (a conflict, reported).
    /// Returns whether the kernel now holds ours.
    async fn write(&mut self, prefix: Prefix, m: RouteMessage) -> Result<bool, Error> {
        let started = std::time::Instant::now();
        let replace = self.owned.contains(&prefix);
        let res = execute(self.handle.clone(), Op::Write { msg: m, replace }).await;
        let took = started.elapsed();
        let out = self.settle_write(prefix, res, took);
        self.stats.set_conflicts(self.conflicts.len());
        out
    }

    fn settle_write(
        &mut self,
        prefix: Prefix,
        res: Result<(), rtnetlink::Error>,
        took: std::time::Duration,
    ) -> Result<bool, Error> {
        match res {
            Ok(()) => {
                self.stats.write(took);
                self.owned.insert(prefix);
                if self.conflicts.remove(&prefix) {
                    tracing::info!(target: "bgp.kernel", event = "route_conflict_resolved", prefix = %prefix);
                }
                Ok(true)
            }
            Err(e) if errno(&e) == Some(libc::EEXIST) => {
                if self.conflicts.insert(prefix) {
                    tracing::warn!(
                        target: "bgp.kernel",
                        event = "route_conflict",
                        prefix = %prefix,
                        metric = self.cfg.metric,
                        "a route of another protocol holds this prefix at our table and metric; left alone"
                    );
                }
                Ok(false)
            }
            Err(e) => {
                self.stats.failure();
                Err(nl_err("write route")(e))
            }
        }
    }

    fn excluded(&self, p: &Prefix) -> bool {
        self.exclude.iter().any(|e| prefix_contains(e, p))
    }

    /// Prefixes whose route another protocol holds at our table and metric.
    pub fn conflicts(&self) -> &BTreeSet<Prefix> {
        &self.conflicts
    }

    async fn blackhole(&mut self, prefix: Prefix) -> Result<(), Error> {
        let b = self.base(&prefix).kind(RouteType::BlackHole);
        self.write(prefix, b.build()).await.map(|_| ())
    }

    /// Delete our route for `prefix`; gone already is success. IPv6 multipath routes may be
    /// stored as siblings, so repeat (bounded) until the kernel says there is none.
    async fn delete(&mut self, prefix: Prefix) -> Result<(), Error> {
        self.conflicts.remove(&prefix);
        if !self.owned.remove(&prefix) {
            // Not ours: nothing to delete (and never someone else's route).
            return Ok(());
        }
        let op = Op::Delete(self.delete_msg(&prefix));
        execute(self.handle.clone(), op).await.map_err(|e| {
            self.stats.failure();
            nl_err("delete route")(e)
        })
    }

    /// The message deleting our route for `prefix` (our protocol, table and metric).
    fn delete_msg(&self, prefix: &Prefix) -> RouteMessage {
        let mut m = self.base(prefix).scope(RouteScope::NoWhere).build();
        m.header.kind = RouteType::Unspec;
        m
    }

    async fn command(&mut self, cmd: KernelCmd) {
        let r = match cmd {
            KernelCmd::Install(p, nh) => {
                self.apply_routes([(p, Some(nh))].into()).await;
                Ok(())
            }
            KernelCmd::Deleted(p) => {
                if self.installed.contains(&p)
                    && !self.excluded(&p)
                    && let Some(nh) = self.wanted.get(&p).cloned()
                {
                    tracing::warn!(target: "bgp.kernel", event = "route_restored", prefix = %p, "our route was deleted by someone else; putting it back");
                    self.owned.remove(&p);
                    self.installed.remove(&p);
                    self.stats.restored();
                    self.apply_routes([(p, Some(nh))].into()).await;
                    Ok(())
                } else if self.blackholes.contains(&p) && !self.wanted.contains_key(&p) {
                    self.owned.remove(&p);
                    self.stats.restored();
                    self.blackhole(p).await
                } else {
                    Ok(())
                }
            }
            KernelCmd::Vacated(p) => {
                if self.conflicts.contains(&p)
                    && let Some(nh) = self.wanted.get(&p).cloned()
                {
                    tracing::info!(target: "bgp.kernel", event = "route_conflict_vacated", prefix = %p);
                    self.apply_routes([(p, Some(nh))].into()).await;
                }
                Ok(())
            }
            KernelCmd::Exclude(ex) => {
                self.exclude = ex;
                let mut r = Ok(());
                let wanted: Vec<(Prefix, Vec<IpAddr>)> =
                    self.wanted.iter().map(|(p, n)| (*p, n.clone())).collect();
                for (p, nh) in wanted {
                    let res = if self.excluded(&p) {
                        if self.installed.remove(&p) && !self.blackholes.contains(&p) {
                            self.delete(p).await
                        } else {
                            Ok(())
                        }
                    } else if !self.installed.contains(&p) {
                        self.install(p, &nh).await
                    } else {
                        Ok(())
                    };
                    if let Err(e) = res {
                        r = Err(e);
                    }
                }
                r
            }
            KernelCmd::Remove(p) => {
                self.apply_routes([(p, None)].into()).await;
                Ok(())
            }
            KernelCmd::Blackhole(p, on) => {
                if on {
                    self.blackholes.insert(p);
                    self.blackhole(p).await
                } else if self.blackholes.remove(&p) && !self.installed.contains(&p) {
                    self.delete(p).await
                } else {
                    Ok(())
                }
            }
            KernelCmd::Synced => {
                let stale: Vec<Prefix> = self
                    .leftover
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| !self.installed.contains(p) && !self.blackholes.contains(p))
                    .collect();
                tracing::info!(target: "bgp.kernel", event = "reconcile", stale = stale.len());
                let mut r = Ok(());
                for p in stale {
                    if let Err(e) = self.delete(p).await {
                        r = Err(e);
                    }
                }
                r
            }
            KernelCmd::Read(reply) => {
                let _ = reply.send(self.read().await.map_err(|e| e.to_string()));
                Ok(())
            }
            KernelCmd::Flush(done) => {
                let r = self.flush().await;
                let _ = done.send(());
                r
            }
        };
        if let Err(e) = r {
            tracing::warn!(target: "bgp.kernel", event = "netlink_error", error = %e);
        }
    }

    async fn flush(&mut self) -> Result<(), Error> {
        for p in self.ours().await? {
            // Found with our protocol, table and metric: ours.
            self.owned.insert(p);
            self.delete(p).await?;
        }
        self.installed.clear();
        self.owned.clear();
        // Shutting down: nothing is wanted any more, so the route monitor's reports of these
        // deletions (and a resync) put nothing back.
        self.wanted.clear();
        self.blackholes.clear();
        Ok(())
    }

    /// Run a batch of commands in order; consecutive route installs and removals are
    /// gathered and written together.
    async fn commands(&mut self, batch: Vec<KernelCmd>) {
        let mut routes: std::collections::BTreeMap<Prefix, Option<Vec<IpAddr>>> =
            Default::default();
        for cmd in batch {
            match cmd {
                KernelCmd::Install(p, nh) => {
                    tracing::trace!(target: "bgp.kernel", event = "install", prefix = %p, nexthops = ?nh);
                    routes.insert(p, Some(nh));
                }
                KernelCmd::Remove(p) => {
                    tracing::trace!(target: "bgp.kernel", event = "remove", prefix = %p);
                    routes.insert(p, None);
                }
                other => {
                    self.apply_routes(std::mem::take(&mut routes)).await;
                    self.command(other).await;
                }
            }
        }
        self.apply_routes(routes).await;
    }

    /// Serve commands until the channel closes.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<KernelCmd>) {
        let mut tick = tokio::time::interval(RESYNC);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let next_retry = self.retry.values().map(|r| r.1).min();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        let mut batch = vec![cmd];
                        while batch.len() < BATCH {
                            match rx.try_recv() {
                                Ok(c) => batch.push(c),
                                Err(_) => break,
                            }
                        }
                        self.commands(batch).await;
                    }
                    None => return,
                },
                _ = sleep_until(next_retry) => self.retry_due().await,
                _ = tick.tick() => {
                    if let Err(e) = self.resync().await {
                        tracing::warn!(target: "bgp.kernel", event = "resync_failed", error = %e);
                    }
                }
            }
        }
    }

    /// Puts back routes of ours that someone deleted: reads our routes from the kernel and
    /// re-installs what the core wants (and the blackholes) but the kernel lacks. A prefix now
    /// held by another protocol at our metric stays theirs (a conflict, reported).
    async fn resync(&mut self) -> Result<(), Error> {
        if self.leftover.is_some() {
            return Ok(()); // graceful restart: the table is not ours to judge yet
        }
        let have = self.ours().await?;
        let missing: Vec<(Prefix, Vec<IpAddr>)> = self
            .wanted
            .iter()
            .filter(|(p, _)| !have.contains(p) && !self.excluded(p))
            .map(|(p, n)| (*p, n.clone()))
            .collect();
        let holes: Vec<Prefix> = self
            .blackholes
            .iter()
            .filter(|p| !have.contains(p) && !self.wanted.contains_key(p))
            .copied()
            .collect();
        for (p, nh) in missing {
            // A conflict is retried quietly: the other protocol's route may have gone.
            if !self.conflicts.contains(&p) {
                tracing::warn!(target: "bgp.kernel", event = "route_restored", prefix = %p, "our route was deleted by someone else; putting it back");
            }
            self.owned.remove(&p);
            self.install(p, &nh).await?;
            if self.installed.contains(&p) {
                self.stats.restored();
            }
        }
        for p in holes {
            tracing::warn!(target: "bgp.kernel", event = "route_restored", prefix = %p, "our blackhole was deleted by someone else; putting it back");
            self.owned.remove(&p);
            self.blackhole(p).await?;
            self.stats.restored();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_one_second_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
