//! [`SpeakerHandle`]: the cheap, cloneable way to change and query a running instance. Every
//! method sends a [`Command`] over an mpsc channel to the instance task and awaits its answer;
//! a change to one neighbor never disturbs the others' sessions.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use brindle_bgp_core::{AdjRoute, PeerStatus, RouteStatus};
use brindle_bgp_wire::{Family, Prefix};
use tokio::sync::{mpsc, oneshot};

use crate::config::{NeighborConfig, OriginConfig};
use crate::error::Error;

/// Requests to the instance task.
#[derive(Debug)]
pub enum Command {
    /// Add a neighbor.
    AddPeer(NeighborConfig, oneshot::Sender<Result<(), Error>>),
    /// Change a neighbor.
    UpdatePeer(NeighborConfig, oneshot::Sender<Result<(), Error>>),
    /// Remove a neighbor.
    RemovePeer(IpAddr, oneshot::Sender<Result<(), Error>>),
    /// ManualStart.
    AdminUp(IpAddr),
    /// ManualStop (Cease/2).
    AdminDown(IpAddr),
    /// Originate or change a prefix.
    Originate(OriginConfig),
    /// Stop originating a prefix.
    Withdraw(Prefix),
    /// Ask a neighbor to resend a family.
    RouteRefresh(IpAddr, Family),
    /// All neighbors' status.
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    /// One neighbor's status.
    Peer(IpAddr, oneshot::Sender<Option<PeerStatus>>),
    /// The Loc-RIB.
    Routes(oneshot::Sender<Vec<RouteStatus>>),
    /// Our routes as the kernel holds them (None when the instance writes no kernel routes).
    KernelRoutes(oneshot::Sender<Option<oneshot::Receiver<KernelRead>>>),
    /// A neighbor's Adj-RIB-In (true) or Adj-RIB-Out (false); None for an unknown neighbor.
    Adj(IpAddr, bool, oneshot::Sender<Option<Vec<AdjRoute>>>),
    /// What the core wants in the kernel.
    Installed(oneshot::Sender<BTreeMap<Prefix, Vec<IpAddr>>>),
    /// Never install learned routes within these prefixes (another writer owns them).
    KernelExclude(Vec<Prefix>),
    /// Stop: Cease to every neighbor, then end the instance task.
    Shutdown {
        /// Delete our kernel routes too.
        flush_routes: bool,
        /// Answered when done.
        done: oneshot::Sender<()>,
    },
}

/// Our routes read back from the kernel, or why they could not be.
pub type KernelRead = Result<BTreeMap<Prefix, Vec<IpAddr>>, String>;

/// A handle on a running instance.
#[derive(Debug, Clone)]
pub struct SpeakerHandle {
    tx: mpsc::Sender<Command>,
    listen_addr: Option<SocketAddr>,
    epoch: tokio::time::Instant,
    fib: Option<std::sync::Arc<crate::fib_stats::FibStats>>,
}

impl SpeakerHandle {
    pub(crate) fn new(
        tx: mpsc::Sender<Command>,
        listen_addr: Option<SocketAddr>,
        epoch: tokio::time::Instant,
        fib: Option<std::sync::Arc<crate::fib_stats::FibStats>>,
    ) -> Self {
        SpeakerHandle {
            tx,
            listen_addr,
            epoch,
            fib,
        }
    }

    /// The kernel route writer's counters (None when routes are not written to the kernel).
    pub fn fib_stats(&self) -> Option<crate::fib_stats::FibCounters> {
        self.fib.as_ref().map(|f| f.read())
    }

    /// How long ago a moment of the instance's clock (as in [`PeerStatus`]) was.
    pub fn elapsed_since(&self, at: brindle_bgp_core::time::Instant) -> std::time::Duration {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        std::time::Duration::from_millis(now.saturating_sub(at.as_millis()))
    }

    /// How long the instance has run.
    pub fn uptime(&self) -> std::time::Duration {
        self.epoch.elapsed()
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    async fn send(&self, c: Command) -> Result<(), Error> {
        self.tx.send(c).await.map_err(|_| Error::Stopped)
    }

    async fn ask<T>(&self, f: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(f(tx)).await?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Add a neighbor; fails when one with the same address exists.
    pub async fn add_peer(&self, n: NeighborConfig) -> Result<(), Error> {
        self.ask(|r| Command::AddPeer(n, r)).await?
    }

    /// Change a neighbor. Filter and next-hop changes apply without a reset; changes to what
    /// the OPEN negotiates or to socket options (password, TTL) reset that session only.
    pub async fn update_peer(&self, n: NeighborConfig) -> Result<(), Error> {
        self.ask(|r| Command::UpdatePeer(n, r)).await?
    }

    /// Remove a neighbor (Cease/3); its routes are withdrawn.
    pub async fn remove_peer(&self, addr: IpAddr) -> Result<(), Error> {
        self.ask(|r| Command::RemovePeer(addr, r)).await?
    }

    /// Start a neighbor that was stopped.
    pub async fn admin_up(&self, addr: IpAddr) -> Result<(), Error> {
        self.send(Command::AdminUp(addr)).await
    }

    /// Stop a neighbor (Cease/2) without removing it.
    pub async fn admin_down(&self, addr: IpAddr) -> Result<(), Error> {
        self.send(Command::AdminDown(addr)).await
    }

    /// Originate (or change) a prefix, optionally with a blackhole route.
    pub async fn originate(&self, o: OriginConfig) -> Result<(), Error> {
        self.send(Command::Originate(o)).await
    }

    /// Stop originating a prefix (and remove its blackhole route).
    pub async fn withdraw(&self, prefix: Prefix) -> Result<(), Error> {
        self.send(Command::Withdraw(prefix)).await
    }

    /// Send a ROUTE-REFRESH for `family` to a neighbor.
    pub async fn route_refresh(&self, addr: IpAddr, family: Family) -> Result<(), Error> {
        self.send(Command::RouteRefresh(addr, family)).await
    }

    /// Status of every neighbor.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, Error> {
        self.ask(Command::Peers).await
    }

    /// Status of one neighbor.
    pub async fn peer(&self, addr: IpAddr) -> Result<Option<PeerStatus>, Error> {
        self.ask(|r| Command::Peer(addr, r)).await
    }

    /// The Loc-RIB.
    pub async fn routes(&self) -> Result<Vec<RouteStatus>, Error> {
        self.ask(Command::Routes).await
    }

    /// A neighbor's Adj-RIB-In: every route it announced, before import policy, with the
    /// verdict. None for an unknown neighbor.
    pub async fn adj_rib_in(&self, addr: IpAddr) -> Result<Option<Vec<AdjRoute>>, Error> {
        self.ask(|r| Command::Adj(addr, true, r)).await
    }

    /// What we advertise to a neighbor (its Adj-RIB-Out). None for an unknown neighbor.
    pub async fn adj_rib_out(&self, addr: IpAddr) -> Result<Option<Vec<AdjRoute>>, Error> {
        self.ask(|r| Command::Adj(addr, false, r)).await
    }

    /// Our routes as the kernel holds them now (prefix → next hops, read back by netlink);
    /// None when the instance writes no kernel routes.
    pub async fn kernel_routes(&self) -> Result<Option<BTreeMap<Prefix, Vec<IpAddr>>>, Error> {
        let Some(rx) = self.ask(Command::KernelRoutes).await? else {
            return Ok(None);
        };
        match rx.await {
            Ok(Ok(m)) => Ok(Some(m)),
            Ok(Err(reason)) => Err(Error::Netlink {
                what: "read routes",
                reason,
            }),
            Err(_) => Err(Error::Stopped),
        }
    }

    /// The kernel routes the core wants (prefix → next hops).
    pub async fn installed_routes(&self) -> Result<BTreeMap<Prefix, Vec<IpAddr>>, Error> {
        self.ask(Command::Installed).await
    }

    /// Keep learned routes within `prefixes` out of the kernel (they stay in the RIB and are
    /// still advertised): another writer, such as a tunnel driver, owns those routes.
    pub async fn set_kernel_exclude(&self, prefixes: Vec<Prefix>) -> Result<(), Error> {
        self.send(Command::KernelExclude(prefixes)).await
    }

    /// Send Cease/Administrative Shutdown to every neighbor and stop the instance. Kernel
    /// routes stay (for graceful restart) unless `flush_routes`.
    pub async fn shutdown(&self, flush_routes: bool) -> Result<(), Error> {
        self.ask(|done| Command::Shutdown { flush_routes, done })
            .await
    }
}
