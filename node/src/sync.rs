//! Applies a [`DesiredBgp`] to a running speaker, changing only what differs: a new, changed or
//! removed session touches that session alone (the speaker resets a session only when what
//! its OPEN negotiates, its password or its TTL changes); originated prefixes are added and
//! withdrawn one by one. A change of AS, router id, listener or cluster id restarts the
//! instance, keeping kernel routes for graceful restart.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use brindle_bgp_core::{GrConfig, SpeakerConfig};
use brindle_bgp_speaker::{
    DriverConfig, KernelConfig, NeighborConfig, OriginConfig, SpeakerHandle, StartMode,
    TransportConfig,
};
use brindle_bgp_wire::Prefix;
use tokio::task::JoinHandle;

use crate::Error;
use crate::desired::{DesiredBgp, DesiredOrigin, DesiredPeer, NextHop};

/// How long a node waits before retrying a connection to a peer (as Calico's BIRD: 5 s).
pub const CONNECT_RETRY: Duration = Duration::from_secs(5);

/// What must restart the instance when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InstanceKey {
    local_as: u32,
    router_id: std::net::Ipv4Addr,
    listen: SocketAddr,
    cluster_id: Option<std::net::Ipv4Addr>,
}

fn instance_key(d: &DesiredBgp) -> InstanceKey {
    InstanceKey {
        local_as: d.local_as,
        router_id: d.router_id,
        listen: SocketAddr::new(
            d.listen_address
                .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            d.listen_port,
        ),
        cluster_id: d.route_reflector_cluster_id,
    }
}

/// The instance configuration (no neighbors: [`SpeakerSync`] adds them).
pub fn driver_config(d: &DesiredBgp, kernel: KernelConfig) -> DriverConfig {
    let key = instance_key(d);
    let mut speaker = SpeakerConfig::new(d.local_as, d.router_id);
    speaker.cluster_id = d.route_reflector_cluster_id;
    speaker.graceful_restart = Some(GrConfig::default());
    speaker.idle_hold_initial = Duration::from_secs(2);
    speaker.max_paths = 8;
    let mut c = DriverConfig::new(speaker);
    c.listen = Some(key.listen);
    c.kernel = kernel;
    c.start = StartMode::Auto;
    c
}

/// One session as the speaker takes it.
pub fn neighbor(p: &DesiredPeer, password: Option<String>) -> NeighborConfig {
    let mut n = NeighborConfig::new(p.address, p.remote_as);
    n.peer.port = p.port;
    n.peer.passive = p.passive;
    n.peer.connect_retry = CONNECT_RETRY;
    n.peer.route_reflector_client = p.route_reflector_client;
    n.peer.next_hop_self = p.next_hop == NextHop::SelfNode;
    n.peer.keep_original_next_hop = p.next_hop == NextHop::Keep;
    n.peer.allow_as_in = p.allow_as_in;
    n.peer.max_prefixes = p.max_prefixes;
    // Keep refused routes so `brindlectl bgp routes --received` names them and a BGPFilter
    // change re-evaluates them at once (a node learns few routes).
    n.peer.soft_reconfiguration_inbound = true;
    n.peer.local_address = p.source_address;
    n.peer.graceful_restart = true;
    n.peer.import = p.import.clone();
    n.peer.export = p.export.clone();
    n.transport = TransportConfig {
        password,
        ttl_security: p.ttl_security,
        // As Calico's BIRD: every session may cross routers unless GTSM bounds it (eBGP would
        // otherwise send with TTL 1 and never reach a node in another subnet).
        multihop: if p.ttl_security.is_none() {
            Some(255)
        } else {
            None
        },
    };
    n
}

/// One originated prefix as the speaker takes it.
pub fn origin(p: Prefix, o: &DesiredOrigin) -> OriginConfig {
    OriginConfig {
        prefix: p,
        attrs: o.attrs.clone(),
        blackhole: o.blackhole,
    }
}

/// What one [`SpeakerSync::apply`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The instance was (re)started.
    pub restarted: bool,
    /// Sessions added.
    pub added: Vec<IpAddr>,
    /// Sessions changed.
    pub updated: Vec<IpAddr>,
    /// Sessions removed.
    pub removed: Vec<IpAddr>,
    /// Prefixes originated or changed.
    pub originated: Vec<Prefix>,
    /// Prefixes withdrawn.
    pub withdrawn: Vec<Prefix>,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// The owner of one node's speaker and of what was applied to it.
#[derive(Debug)]
pub struct SpeakerSync {
    running: Option<(SpeakerHandle, JoinHandle<()>, InstanceKey)>,
    peers: BTreeMap<IpAddr, NeighborConfig>,
    origins: BTreeMap<Prefix, OriginConfig>,
    kernel: KernelConfig,
    secrets_dir: Option<PathBuf>,
    exclude: Vec<Prefix>,
}

impl SpeakerSync {
    /// Nothing running yet; the first [`SpeakerSync::apply`] starts the instance.
    pub fn new(kernel: KernelConfig, secrets_dir: Option<PathBuf>) -> SpeakerSync {
        SpeakerSync {
            running: None,
            peers: BTreeMap::new(),
            origins: BTreeMap::new(),
            kernel,
            secrets_dir,
            exclude: Vec::new(),
        }
    }

    /// Keeps learned routes within `prefixes` out of the kernel (pools whose routes the tunnel
    /// driver owns); sent again after an instance restart.
    pub async fn exclude_from_kernel(&mut self, prefixes: Vec<Prefix>) -> Result<(), Error> {
        if prefixes == self.exclude {
            return Ok(());
        }
        self.exclude = prefixes;
        if let Some((h, _, _)) = &self.running {
            h.set_kernel_exclude(self.exclude.clone()).await?;
        }
        Ok(())
    }

    /// The running speaker.
    pub fn handle(&self) -> Option<&SpeakerHandle> {
        self.running.as_ref().map(|(h, _, _)| h)
    }

    fn password(&self, p: &DesiredPeer) -> Result<Option<String>, Error> {
        let Some(src) = &p.password else {
            return Ok(None);
        };
        let dir = self.secrets_dir.as_ref().ok_or_else(|| Error::Config {
            field: format!("{} password", p.source),
            reason: "a secretKeyRef needs --secrets-dir".into(),
        })?;
        crate::secrets::read(dir, src).map(Some)
    }

    /// Makes the speaker match `d`.
    pub async fn apply(&mut self, d: &DesiredBgp) -> Result<Changes, Error> {
        let mut ch = Changes::default();
        let key = instance_key(d);
        if self.running.as_ref().map(|r| &r.2) != Some(&key) {
            if let Some((h, task, old)) = self.running.take() {
                tracing::info!(target: "node.bgp", event = "instance_restart", from = ?old, to = ?key, "AS, router id, listener or cluster id changed");
                let _ = h.shutdown(false).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
            let (h, task) =
                brindle_bgp_speaker::start(driver_config(d, self.kernel.clone())).await?;
            self.running = Some((h, task, key));
            self.peers.clear();
            self.origins.clear();
            ch.restarted = true;
        }
        let Some((h, _, _)) = &self.running else {
            return Ok(ch);
        };
        let h = h.clone();
        // Sessions.
        let mut want: BTreeMap<IpAddr, NeighborConfig> = BTreeMap::new();
        for (addr, p) in &d.peers {
            match self.password(p) {
                Ok(pw) => {
                    want.insert(*addr, neighbor(p, pw));
                }
                Err(e) => {
                    // Keep a working session as it is (say, mid-rotation of its secret file).
                    if let Some(old) = self.peers.get(addr) {
                        want.insert(*addr, old.clone());
                    }
                    tracing::error!(target: "node.bgp", event = "peer_password_unreadable", peer = %addr, source = %p.source, error = %e, "session left as it was (or not configured)");
                }
            }
        }
        let gone: Vec<IpAddr> = self
            .peers
            .keys()
            .filter(|a| !want.contains_key(a))
            .copied()
            .collect();
        for a in gone {
            h.remove_peer(a).await?;
            self.peers.remove(&a);
            tracing::info!(target: "node.bgp", event = "peer_removed", peer = %a);
            ch.removed.push(a);
        }
        for (a, n) in want {
            let p = &d.peers[&a];
            match self.peers.get(&a) {
                None => {
                    h.add_peer(n.clone()).await?;
                    tracing::info!(target: "node.bgp", event = "peer_added", peer = %a, remote_as = p.remote_as, source = %p.source, passive = p.passive, rr_client = p.route_reflector_client, "session configured");
                    ch.added.push(a);
                }
                Some(old) if *old != n => {
                    h.update_peer(n.clone()).await?;
                    tracing::info!(target: "node.bgp", event = "peer_updated", peer = %a, source = %p.source);
                    ch.updated.push(a);
                }
                Some(_) => continue,
            }
            self.peers.insert(a, n);
        }
        // Advertisements.
        let want: BTreeMap<Prefix, OriginConfig> = d
            .originate
            .iter()
            .map(|(p, o)| (*p, origin(*p, o)))
            .collect();
        let gone: Vec<Prefix> = self
            .origins
            .keys()
            .filter(|p| !want.contains_key(p))
            .copied()
            .collect();
        for p in gone {
            h.withdraw(p).await?;
            self.origins.remove(&p);
            tracing::info!(target: "node.bgp", event = "withdrawn", prefix = %p);
            ch.withdrawn.push(p);
        }
        for (p, o) in want {
            if self.origins.get(&p) != Some(&o) {
                h.originate(o.clone()).await?;
                tracing::info!(target: "node.bgp", event = "originated", prefix = %p, reason = %d.originate[&p].reason);
                self.origins.insert(p, o);
                ch.originated.push(p);
            }
        }
        Ok(ch)
    }

    /// Stops the speaker: Cease to every peer; kernel routes stay for graceful restart.
    pub async fn shutdown(&mut self) {
        if let Some((h, task, _)) = self.running.take() {
            let _ = h.shutdown(false).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}
