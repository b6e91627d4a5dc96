//! The gRPC status API (`brindle.status.v1`) on a Unix socket: an edge that reads the last
//! published [`NodeStatus`] and converts domain types to the API's messages. The socket is
//! mode 0660 and every call checks the caller's credentials (SO_PEERCRED): root, or the
//! daemon's own user.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use brindle_bgp_core::{AdjRoute, PeerType as BgpType, RouteAttrs, RouteSource, State};
use brindle_bgp_wire::{Afi, Origin as WireOrigin, Prefix};
use brindle_proto::status as pb;
use brindle_proto::status::status_server::{Status as StatusApi, StatusServer};
use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::desired::{DesiredPeer, PeerType};
use crate::status::{NodeStatus, PeerState};

/// One mapping from errors to gRPC statuses.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unknown peer or bad argument.
    #[error("{0}")]
    NotFound(String),
    /// Bad request.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not ask.
    #[error("{0}")]
    Denied(String),
    /// Not ready yet.
    #[error("{0}")]
    Unavailable(String),
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::Invalid(m) => Status::invalid_argument(m),
            ApiError::Denied(m) => Status::permission_denied(m),
            ApiError::Unavailable(m) => Status::unavailable(m),
        }
    }
}

/// The service over a watch of the node's status.
#[derive(Debug, Clone)]
pub struct Service {
    rx: watch::Receiver<Arc<NodeStatus>>,
    uid: u32,
}

impl Service {
    /// A service reading `rx`; callers must be root or `uid`.
    pub fn new(rx: watch::Receiver<Arc<NodeStatus>>) -> Service {
        Service {
            rx,
            // /proc/self belongs to the process's effective user.
            uid: std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .unwrap_or(0),
        }
    }

    fn authorise<T>(&self, req: &Request<T>) -> Result<Arc<NodeStatus>, ApiError> {
        let cred = req
            .extensions()
            .get::<tonic::transport::server::UdsConnectInfo>()
            .and_then(|i| i.peer_cred);
        match cred {
            Some(c) if c.uid() == 0 || c.uid() == self.uid => Ok(self.rx.borrow().clone()),
            Some(c) => Err(ApiError::Denied(format!(
                "uid {} may not query this node (root or uid {} only)",
                c.uid(),
                self.uid
            ))),
            // Not over a Unix socket (tests with an in-process channel): allowed.
            None => Ok(self.rx.borrow().clone()),
        }
    }
}

fn state(p: &PeerState) -> pb::SessionState {
    if !p.status.admin_up {
        return pb::SessionState::IdleAdmin;
    }
    match p.status.state {
        State::Idle => pb::SessionState::Idle,
        State::Connect => pb::SessionState::Connect,
        State::Active => pb::SessionState::Active,
        State::OpenSent => pb::SessionState::OpenSent,
        State::OpenConfirm => pb::SessionState::OpenConfirm,
        State::Established => pb::SessionState::Established,
    }
}

/// `ipv4`, `ipv6` (or the family's debug form).
pub fn family_name(f: &brindle_bgp_wire::Family) -> String {
    match f.afi {
        Afi::IPV4 => "ipv4".into(),
        Afi::IPV6 => "ipv6".into(),
        _ => format!("{f:?}"),
    }
}

/// One session as the API shows it.
pub fn peer_msg(p: &PeerState, d: Option<&DesiredPeer>) -> pb::Peer {
    let s = &p.status;
    let caps = s.capabilities.as_ref();
    let mut capabilities = Vec::new();
    if let Some(c) = caps {
        capabilities.extend(c.families.iter().map(|f| format!("mp-{}", family_name(f))));
        if c.four_octet_as {
            capabilities.push("4-octet-as".into());
        }
        if c.route_refresh {
            capabilities.push("route-refresh".into());
        }
        if c.enhanced_route_refresh {
            capabilities.push("enhanced-route-refresh".into());
        }
        if c.extended_message {
            capabilities.push("extended-message".into());
        }
        if c.graceful_restart.is_some() {
            capabilities.push("graceful-restart".into());
        }
    }
    pb::Peer {
        address: s.address.to_string(),
        port: d.map(|d| u32::from(d.port)).unwrap_or(179),
        source: match d.map(|d| d.peer_type) {
            Some(PeerType::Mesh) => pb::PeerSource::Mesh,
            Some(PeerType::Global) => pb::PeerSource::Global,
            Some(PeerType::NodeSpecific) => pb::PeerSource::NodeSpecific,
            None => pb::PeerSource::Unspecified,
        } as i32,
        source_name: d.map(|d| d.source.clone()).unwrap_or_default(),
        peer_node: d.and_then(|d| d.peer_node.clone()).unwrap_or_default(),
        session_type: match s.peer_type {
            BgpType::Ibgp => pb::SessionType::Ibgp,
            BgpType::Ebgp => pb::SessionType::Ebgp,
        } as i32,
        route_reflector_client: s.route_reflector_client,
        cluster_id: d
            .and_then(|d| d.cluster_id)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        local_as: s.local_as,
        remote_as: s.remote_as,
        remote_router_id: caps
            .map(|c| c.remote_router_id.to_string())
            .unwrap_or_default(),
        state: state(p) as i32,
        since_seconds: p.since.as_secs(),
        last_error: s.last_error.as_ref().map(|e| pb::LastError {
            text: e.text.clone(),
            code: e.notification.map(|n| u32::from(n.code())).unwrap_or(0),
            subcode: e.notification.map(|n| u32::from(n.subcode())).unwrap_or(0),
            sent: e.sent,
            seconds_ago: p.last_error_age.map(|a| a.as_secs()).unwrap_or(0),
        }),
        configured_hold_time: u32::from(s.configured_hold_time),
        negotiated_hold_time: caps.map(|c| u32::from(c.hold_time)).unwrap_or(0),
        negotiated_keepalive: caps.map(|c| u32::from(c.keepalive)).unwrap_or(0),
        md5: d.is_some_and(|d| d.password.is_some()),
        ttl_security_hops: d.and_then(|d| d.ttl_security).map(u32::from).unwrap_or(0),
        passive: d.is_some_and(|d| d.passive),
        capabilities,
        graceful_restart_time: caps
            .and_then(|c| c.graceful_restart)
            .map(u32::from)
            .unwrap_or(0),
        stale_families: s.stale_families.iter().map(family_name).collect(),
        families: s
            .families
            .iter()
            .map(|(f, c)| pb::FamilyCounters {
                family: family_name(f),
                received: c.received as u64,
                accepted: c.accepted as u64,
                advertised: c.advertised as u64,
            })
            .collect(),
        flaps: s.flaps,
        capabilities_sent: caps.map(|c| c.sent.clone()).unwrap_or_default(),
        capabilities_received: caps.map(|c| c.received.clone()).unwrap_or_default(),
        messages: Some(pb::MessageCounters {
            sent: Some(count_msg(&s.messages.sent)),
            received: Some(count_msg(&s.messages.received)),
        }),
    }
}

fn count_msg(c: &brindle_bgp_core::MessageCount) -> pb::MessageCount {
    pb::MessageCount {
        open: c.open,
        update: c.update,
        notification: c.notification,
        keepalive: c.keepalive,
        route_refresh: c.route_refresh,
    }
}

fn peers_of(st: &NodeStatus) -> Vec<pb::Peer> {
    st.peers
        .iter()
        .map(|p| {
            let d = st
                .desired
                .as_ref()
                .and_then(|d| d.peers.get(&p.status.address));
            peer_msg(p, d)
        })
        .collect()
}

/// The host prefix of an address (/32 or /128), for longest-match lookups.
fn host_prefix(ip: IpAddr) -> Option<Prefix> {
    match ip {
        IpAddr::V4(a) => Prefix::v4(a, 32),
        IpAddr::V6(a) => Prefix::v6(a, 128),
    }
}

/// Keeps the items whose prefix is of `family` (`ipv4`, `ipv6` or empty) and, when `prefix`
/// is given, equals it (a prefix) or is its longest match (an address).
fn select<'a, T>(
    items: impl Iterator<Item = &'a T>,
    key: impl Fn(&T) -> Prefix,
    family: &str,
    prefix: &str,
) -> Result<Vec<&'a T>, ApiError> {
    let want_v4 = match family {
        "" => None,
        "ipv4" | "4" => Some(true),
        "ipv6" | "6" => Some(false),
        o => {
            return Err(ApiError::Invalid(format!(
                "family {o:?}: expected ipv4 or ipv6"
            )));
        }
    };
    let mut rows: Vec<&T> = items
        .filter(|r| want_v4.is_none_or(|v4| matches!(key(r), Prefix::V4(..)) == v4))
        .collect();
    if !prefix.is_empty() {
        if prefix.contains('/') {
            let p = brindle_bgp_speaker::config::parse_prefix(prefix)
                .map_err(|e| ApiError::Invalid(e.to_string()))?;
            rows.retain(|r| key(r) == p);
        } else {
            let ip: IpAddr = prefix.parse().map_err(|_| {
                ApiError::Invalid(format!("{prefix:?} is neither a prefix nor an address"))
            })?;
            let best = rows
                .iter()
                .filter(|r| {
                    host_prefix(ip)
                        .is_some_and(|h| brindle_bgp_speaker::kernel::prefix_contains(&key(r), &h))
                })
                .max_by_key(|r| key(r).len())
                .copied();
            rows = best.into_iter().collect();
        }
    }
    Ok(rows)
}

/// One path as the API shows it.
fn path_msg(source: String, a: &RouteAttrs) -> pb::Path {
    pb::Path {
        source,
        next_hop: a.next_hop.map(|n| n.to_string()).unwrap_or_default(),
        as_path: a
            .as_path
            .segments
            .iter()
            .flat_map(|s| s.asns.iter().copied())
            .collect(),
        origin: match a.origin {
            WireOrigin::Igp => pb::Origin::Igp,
            WireOrigin::Egp => pb::Origin::Egp,
            WireOrigin::Incomplete => pb::Origin::Incomplete,
        } as i32,
        local_pref: a.local_pref,
        med: a.med,
        communities: a
            .communities
            .iter()
            .map(|c| format!("{}:{}", c.0 >> 16, c.0 & 0xffff))
            .collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(ToString::to_string)
            .collect(),
        ..Default::default()
    }
}

/// The Loc-RIB as the API shows it, filtered by family and by prefix or longest match, each
/// prefix with what the kernel holds for it (`kernel`, read back by netlink; when None, what the
/// speaker asked for) and whether that differs from what the speaker wants.
pub fn routes_msg(
    st: &NodeStatus,
    kernel: Option<&BTreeMap<Prefix, Vec<IpAddr>>>,
    family: &str,
    prefix: &str,
) -> Result<Vec<pb::Route>, ApiError> {
    let rows = select(st.routes.iter(), |r| r.prefix, family, prefix)?;
    let hops = |m: &BTreeMap<Prefix, Vec<IpAddr>>, p: &Prefix| {
        let mut v: Vec<String> = m
            .get(p)
            .map(|n| n.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        v.sort();
        v.dedup();
        v
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let excluded = st
                .kernel_excluded
                .iter()
                .any(|e| brindle_bgp_speaker::kernel::prefix_contains(e, &r.prefix));
            let wanted = if excluded {
                Vec::new()
            } else {
                hops(&st.fib, &r.prefix)
            };
            let (fib, fib_mismatch) = match kernel {
                Some(k) => {
                    let have = hops(k, &r.prefix);
                    let differ = have != wanted;
                    (have, differ)
                }
                None => (wanted, false),
            };
            pb::Route {
                prefix: r.prefix.to_string(),
                fib_mismatch,
                fib_excluded: excluded,
                fib_next_hops: fib,
                paths: r
                    .paths
                    .iter()
                    .map(|p| pb::Path {
                        best: p.best,
                        multipath: p.multipath,
                        stale: p.stale,
                        nexthop_unreachable: p.nexthop_unreachable,
                        age_seconds: st
                            .speaker
                            .as_ref()
                            .map(|h| h.elapsed_since(p.since).as_secs())
                            .unwrap_or(0),
                        ..path_msg(
                            match p.source {
                                RouteSource::Local => "local".into(),
                                RouteSource::Peer(a) => a.to_string(),
                            },
                            &p.attrs,
                        )
                    })
                    .collect(),
            }
        })
        .collect())
}

/// A neighbor's Adj-RIB-In (before import policy, with why a route was refused) or
/// Adj-RIB-Out (as sent), filtered like the Loc-RIB.
pub fn adj_routes_msg(
    peer: IpAddr,
    routes: &[AdjRoute],
    family: &str,
    prefix: &str,
) -> Result<Vec<pb::Route>, ApiError> {
    let rows = select(routes.iter(), |r| r.prefix, family, prefix)?;
    Ok(rows
        .into_iter()
        .map(|r| pb::Route {
            prefix: r.prefix.to_string(),
            paths: vec![pb::Path {
                stale: r.stale,
                rejected: r.rejected.clone().unwrap_or_default(),
                ..path_msg(peer.to_string(), &r.attrs)
            }],
            ..Default::default()
        })
        .collect())
}

/// The summary as the API shows it.
pub fn summary_msg(st: &NodeStatus) -> pb::Summary {
    let d = st.desired.as_ref();
    let established = |v4: bool| {
        st.peers
            .iter()
            .filter(|p| p.status.state == State::Established && p.status.address.is_ipv4() == v4)
            .count() as u32
    };
    let mut notes: Vec<String> = d.map(|d| d.notes.clone()).unwrap_or_default();
    notes.extend(
        st.dataplane_problems
            .iter()
            .map(|p| format!("dataplane: {p}")),
    );
    if let Some(e) = &st.desired_error {
        notes.push(format!("configuration error: {e}"));
    }
    pb::Summary {
        version: env!("CARGO_PKG_VERSION").to_string(),
        node: st.node.clone(),
        router_id: d.map(|d| d.router_id.to_string()).unwrap_or_default(),
        local_as: d.map(|d| d.local_as).unwrap_or(0),
        uptime_seconds: st.started.map(|s| s.elapsed().as_secs()).unwrap_or(0),
        datastore: st.datastore.clone(),
        datastore_in_sync: st.in_sync,
        last_reconfigured_seconds_ago: st
            .last_change
            .as_ref()
            .map(|(t, _)| t.elapsed().as_secs())
            .unwrap_or(0),
        last_change: st
            .last_change
            .as_ref()
            .map(|(_, c)| c.clone())
            .unwrap_or_default(),
        peers_total: st.peers.len() as u32,
        established_ipv4: established(true),
        established_ipv6: established(false),
        advertised_prefixes: d
            .map(|d| d.originate.keys().map(ToString::to_string).collect())
            .unwrap_or_default(),
        blocks: st.blocks,
        addresses_in_use: st.addresses_in_use,
        notes,
        route_reflector_cluster_id: d
            .and_then(|d| d.route_reflector_cluster_id)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        listen_port: d.map(|d| u32::from(d.listen_port)).unwrap_or(0),
    }
}

type PeerStream = Pin<Box<dyn Stream<Item = Result<pb::PeerEvent, Status>> + Send>>;

fn tiers_msg(tiers: &[brindle_felix::calc::TierPlan]) -> Vec<pb::PolicyTier> {
    tiers
        .iter()
        .map(|t| pb::PolicyTier {
            tier: t.tier.clone(),
            policies: t.policies.clone(),
            pass_at_end: t.pass_at_end,
        })
        .collect()
}

/// The policy of one endpoint (`host:<iface>` for a host endpoint), with the counters of the
/// rules of its policies and profiles.
async fn endpoint_policy(st: &NodeStatus, endpoint: &str) -> Result<pb::EndpointPolicy, ApiError> {
    use brindle_felix::dataplane::Kind;
    let p = st
        .policy
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable(format!("no policy applied on {} yet", st.node)))?;
    let dataplane = match p.kind {
        Kind::Nftables => pb::PolicyDataplane::Nftables,
        Kind::Iptables => pb::PolicyDataplane::Iptables,
    } as i32;
    if endpoint.is_empty() {
        return Ok(pb::EndpointPolicy {
            dataplane,
            endpoints: p
                .endpoints
                .keys()
                .cloned()
                .chain(p.hosts.keys().map(|h| format!("host:{h}")))
                .collect(),
            ..Default::default()
        });
    }
    let plan = match endpoint.strip_prefix("host:") {
        Some(h) => p.hosts.get(h),
        None => p.endpoints.get(endpoint),
    }
    .ok_or_else(|| ApiError::NotFound(format!("no endpoint {endpoint:?} on {}", st.node)))?;
    let counters = brindle_felix::counters::read(p.kind)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut owners: Vec<String> = plan
        .ingress
        .iter()
        .chain(&plan.egress)
        .flat_map(|t| t.policies.iter().cloned())
        .collect();
    owners.extend(plan.profiles.iter().map(|pr| format!("profile {pr}")));
    let counters = counters
        .into_iter()
        .filter(|(label, _)| {
            owners.iter().any(|o| {
                label
                    .strip_prefix(o.as_str())
                    .is_some_and(|r| r.starts_with(' '))
            })
        })
        .map(|(rule, (packets, bytes))| pb::RuleCounter {
            rule,
            packets,
            bytes,
        })
        .collect();
    Ok(pb::EndpointPolicy {
        endpoint: endpoint.to_string(),
        dataplane,
        ingress: tiers_msg(&plan.ingress),
        egress: tiers_msg(&plan.egress),
        profiles: plan.profiles.clone(),
        counters,
        endpoints: Vec::new(),
    })
}

#[tonic::async_trait]
impl StatusApi for Service {
    async fn get_policy(
        &self,
        req: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::EndpointPolicy>, Status> {
        let st = self.authorise(&req)?;
        Ok(Response::new(
            endpoint_policy(&st, &req.get_ref().endpoint).await?,
        ))
    }

    async fn get_summary(
        &self,
        req: Request<pb::GetSummaryRequest>,
    ) -> Result<Response<pb::Summary>, Status> {
        let st = self.authorise(&req)?;
        Ok(Response::new(summary_msg(&st)))
    }

    async fn list_peers(
        &self,
        req: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        let st = self.authorise(&req)?;
        Ok(Response::new(pb::ListPeersResponse {
            peers: peers_of(&st),
        }))
    }

    async fn get_peer(
        &self,
        req: Request<pb::GetPeerRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let st = self.authorise(&req)?;
        let addr: IpAddr = req.get_ref().address.parse().map_err(|_| {
            ApiError::Invalid(format!("{:?} is not an address", req.get_ref().address))
        })?;
        let p = peers_of(&st)
            .into_iter()
            .find(|p| p.address == addr.to_string())
            .ok_or_else(|| ApiError::NotFound(format!("no session with {addr} on {}", st.node)))?;
        Ok(Response::new(p))
    }

    async fn list_routes(
        &self,
        req: Request<pb::ListRoutesRequest>,
    ) -> Result<Response<pb::ListRoutesResponse>, Status> {
        let st = self.authorise(&req)?;
        let r = req.get_ref();
        if r.peer.is_empty() {
            // What the kernel holds now, read on demand (None without kernel routes).
            let kernel = match &st.speaker {
                Some(h) => match h.kernel_routes().await {
                    Ok(k) => k,
                    Err(e) => {
                        tracing::warn!(target: "node.api", error = %e, "cannot read the kernel's routes");
                        None
                    }
                },
                None => None,
            };
            return Ok(Response::new(pb::ListRoutesResponse {
                routes: routes_msg(&st, kernel.as_ref(), &r.family, &r.prefix)?,
            }));
        }
        let peer: IpAddr = r
            .peer
            .parse()
            .map_err(|_| ApiError::Invalid(format!("peer {:?} is not an address", r.peer)))?;
        let inbound = match pb::AdjRib::try_from(r.adj) {
            Ok(pb::AdjRib::In) => true,
            Ok(pb::AdjRib::Out) => false,
            _ => {
                return Err(ApiError::Invalid(
                    "with a peer, ask for its received (Adj-RIB-In) or advertised (Adj-RIB-Out) routes".into(),
                )
                .into());
            }
        };
        let h = st
            .speaker
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("the BGP speaker is not running".into()))?;
        let got = if inbound {
            h.adj_rib_in(peer).await
        } else {
            h.adj_rib_out(peer).await
        }
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no session with {peer} on {}", st.node)))?;
        Ok(Response::new(pb::ListRoutesResponse {
            routes: adj_routes_msg(peer, &got, &r.family, &r.prefix)?,
        }))
    }

    type WatchPeersStream = PeerStream;

    async fn watch_peers(
        &self,
        req: Request<pb::WatchPeersRequest>,
    ) -> Result<Response<PeerStream>, Status> {
        self.authorise(&req)?;
        let mut rx = self.rx.clone();
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut last: BTreeMap<String, i32> = BTreeMap::new();
            loop {
                let st = rx.borrow_and_update().clone();
                for p in peers_of(&st) {
                    let prev = last.insert(p.address.clone(), p.state);
                    if prev != Some(p.state) {
                        let ev = pb::PeerEvent {
                            previous: prev.unwrap_or(0),
                            peer: Some(p),
                        };
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}

/// The default socket path of a node.
pub fn default_socket(node: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/brindle/{node}.sock"))
}

/// Serves the API on a Unix socket (replacing a stale socket file) until the task is dropped.
pub async fn serve(
    path: &Path,
    rx: watch::Receiver<Arc<NodeStatus>>,
) -> Result<tokio::task::JoinHandle<()>, crate::Error> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| crate::Error::Io(format!("{}: {e}", d.display())))?;
    }
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| crate::Error::Io(format!("bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| crate::Error::Io(format!("chmod {}: {e}", path.display())))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let svc = StatusServer::new(Service::new(rx));
    tracing::info!(target: "node.api", socket = %path.display(), "status API listening");
    Ok(tokio::spawn(async move {
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!(target: "node.api", error = %e, "status API stopped");
        }
    }))
}
