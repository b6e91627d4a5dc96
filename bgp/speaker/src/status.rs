//! A JSON-serialisable snapshot of an instance (neighbors, Loc-RIB, installed routes), as the
//! daemon writes it with `--status-file`. Plain views of the core's status types.

use std::collections::BTreeMap;

use brindle_bgp_core::{PeerStatus, PeerType, RouteSource, RouteStatus};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::handle::SpeakerHandle;

/// Everything at one moment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    /// Neighbors by address.
    pub peers: Vec<PeerView>,
    /// Loc-RIB.
    pub routes: Vec<RouteView>,
    /// Kernel routes the core wants: prefix → next hops.
    pub installed: BTreeMap<String, Vec<String>>,
}

/// One neighbor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerView {
    /// Address.
    pub address: String,
    /// Neighbor AS.
    pub remote_as: u32,
    /// `ibgp` / `ebgp`.
    pub peer_type: String,
    /// RFC 4271 state name.
    pub state: String,
    /// Times the session went down.
    pub flaps: u32,
    /// Last error text.
    pub last_error: Option<String>,
    /// Last NOTIFICATION code/subcode and whether we sent it.
    pub last_notification: Option<(u8, u8, bool)>,
    /// Per family: received, accepted, advertised.
    pub families: BTreeMap<String, (usize, usize, usize)>,
    /// Negotiated hold time.
    pub hold_time: Option<u16>,
    /// Families held stale by the GR helper.
    pub stale_families: Vec<String>,
    /// Flow control: the write queue is blocked and advertisements wait.
    #[serde(default)]
    pub send_blocked: bool,
    /// Prefixes waiting while blocked.
    #[serde(default)]
    pub backlog_prefixes: usize,
    /// Bytes queued for the neighbor, not yet taken by the kernel.
    #[serde(default)]
    pub out_queue_bytes: u64,
}

/// One Loc-RIB path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathView {
    /// `local` or the neighbor address.
    pub source: String,
    /// Next hop.
    pub next_hop: Option<String>,
    /// AS numbers of the AS_PATH, flattened.
    pub as_path: Vec<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// Best path.
    pub best: bool,
    /// ECMP member.
    pub multipath: bool,
    /// Held stale by graceful restart.
    pub stale: bool,
    /// Not a candidate: its next hop does not resolve (RFC 4271 §9.1.2.1).
    #[serde(default)]
    pub nexthop_unreachable: bool,
}

/// One Loc-RIB entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteView {
    /// The prefix.
    pub prefix: String,
    /// Its paths.
    pub paths: Vec<PathView>,
}

impl From<&PeerStatus> for PeerView {
    fn from(p: &PeerStatus) -> Self {
        PeerView {
            address: p.address.to_string(),
            remote_as: p.remote_as,
            peer_type: match p.peer_type {
                PeerType::Ibgp => "ibgp".into(),
                PeerType::Ebgp => "ebgp".into(),
            },
            state: p.state.to_string(),
            flaps: p.flaps,
            last_error: p.last_error.as_ref().map(|e| e.text.clone()),
            last_notification: p
                .last_error
                .as_ref()
                .and_then(|e| e.notification.map(|n| (n.code(), n.subcode(), e.sent))),
            families: p
                .families
                .iter()
                .map(|(f, c)| (f.to_string(), (c.received, c.accepted, c.advertised)))
                .collect(),
            hold_time: p.capabilities.as_ref().map(|c| c.hold_time),
            stale_families: p.stale_families.iter().map(|f| f.to_string()).collect(),
            send_blocked: p.send_blocked,
            backlog_prefixes: p.backlog_prefixes,
            out_queue_bytes: p.out_queue_bytes,
        }
    }
}

impl From<&RouteStatus> for RouteView {
    fn from(r: &RouteStatus) -> Self {
        RouteView {
            prefix: r.prefix.to_string(),
            paths: r
                .paths
                .iter()
                .map(|p| PathView {
                    source: match p.source {
                        RouteSource::Local => "local".into(),
                        RouteSource::Peer(a) => a.to_string(),
                    },
                    next_hop: p.attrs.next_hop.map(|n| n.to_string()),
                    as_path: p
                        .attrs
                        .as_path
                        .segments
                        .iter()
                        .flat_map(|s| s.asns.iter().copied())
                        .collect(),
                    local_pref: p.attrs.local_pref,
                    best: p.best,
                    multipath: p.multipath,
                    stale: p.stale,
                    nexthop_unreachable: p.nexthop_unreachable,
                })
                .collect(),
        }
    }
}

impl Snapshot {
    /// Asks a running instance and writes the snapshot as JSON to `path` (atomically: a
    /// temporary file renamed over it), for `--status-file`.
    pub async fn write_file(h: &SpeakerHandle, path: &std::path::Path) -> std::io::Result<()> {
        let snap = Snapshot::collect(h)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, serde_json::to_vec_pretty(&snap)?).await?;
        tokio::fs::rename(&tmp, path).await
    }

    /// Ask a running instance.
    pub async fn collect(h: &SpeakerHandle) -> Result<Snapshot, Error> {
        let peers = h.peers().await?;
        let routes = h.routes().await?;
        let installed = h.installed_routes().await?;
        Ok(Snapshot {
            peers: peers.iter().map(PeerView::from).collect(),
            routes: routes.iter().map(RouteView::from).collect(),
            installed: installed
                .iter()
                .map(|(p, nh)| (p.to_string(), nh.iter().map(|a| a.to_string()).collect()))
                .collect(),
        })
    }

    /// The view of the neighbor at `address`.
    pub fn peer(&self, address: &str) -> Option<&PeerView> {
        self.peers.iter().find(|p| p.address == address)
    }
}
