//! `brindlectl node status | node summary | bgp peers | bgp peer ADDR | bgp routes`: queries a
//! node daemon's status API (`brindle.status.v1`) on its Unix socket. Tables by comfy-table,
//! colour only on a terminal. When the daemon is down: one line naming the socket, exit 2.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use brindle_proto::status as pb;
use brindle_proto::status::status_client::StatusClient;
use comfy_table::{Cell, Color, Table};
use tonic::transport::Channel;

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table.
    Table,
    /// A table with every column.
    Wide,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Which daemon to ask.
pub fn socket_path(socket: Option<PathBuf>, node: Option<String>) -> PathBuf {
    socket.unwrap_or_else(|| {
        let node = node.unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        });
        PathBuf::from(format!("/var/run/brindle/{node}.sock"))
    })
}

pub(crate) async fn connect(path: &Path) -> anyhow::Result<StatusClient<Channel>> {
    brindle_proto::connect_unix(path).await.with_context(|| {
        format!(
            "cannot reach brindle-node at {} (is it running?)",
            path.display()
        )
    })
}

fn state_name(s: i32) -> &'static str {
    match pb::SessionState::try_from(s).unwrap_or(pb::SessionState::Unspecified) {
        pb::SessionState::Idle => "Idle",
        pb::SessionState::Connect => "Connect",
        pb::SessionState::Active => "Active",
        pb::SessionState::OpenSent => "OpenSent",
        pb::SessionState::OpenConfirm => "OpenConfirm",
        pb::SessionState::Established => "Established",
        pb::SessionState::IdleAdmin => "Idle(Admin)",
        pb::SessionState::Unspecified => "?",
    }
}

fn source_name(p: &pb::Peer) -> String {
    let kind = match pb::PeerSource::try_from(p.source).unwrap_or(pb::PeerSource::Unspecified) {
        pb::PeerSource::Mesh => "node-to-node mesh",
        pb::PeerSource::Global => "global",
        pb::PeerSource::NodeSpecific => "node specific",
        pb::PeerSource::Unspecified => "?",
    };
    if p.route_reflector_client {
        format!("{kind} (RR client, cluster {})", p.cluster_id)
    } else {
        kind.to_string()
    }
}

fn ago(s: u64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m{}s", s / 60, s % 60),
        s if s < 172_800 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    if !std::io::stdout().is_terminal() {
        t.force_no_tty();
    }
    t.set_header(headers.iter().map(Cell::new).collect::<Vec<_>>());
    t
}

fn state_cell(p: &pb::Peer) -> Cell {
    let name = state_name(p.state);
    let c = Cell::new(name);
    if !std::io::stdout().is_terminal() {
        return c;
    }
    if p.state == pb::SessionState::Established as i32 {
        c.fg(Color::Green)
    } else {
        c.fg(Color::Red)
    }
}

fn error_text(p: &pb::Peer) -> String {
    p.last_error
        .as_ref()
        .map(|e| {
            if e.code != 0 {
                format!(
                    "{} NOTIFICATION {}/{}: {} ({} ago)",
                    if e.sent { "sent" } else { "received" },
                    e.code,
                    e.subcode,
                    e.text,
                    ago(e.seconds_ago)
                )
            } else {
                format!("{} ({} ago)", e.text, ago(e.seconds_ago))
            }
        })
        .unwrap_or_default()
}

fn print_peers(peers: &[pb::Peer], wide: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cols = vec!["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"];
    if wide {
        cols.extend([
            "AS",
            "SOURCE",
            "ROUTES (rcv/acc/adv)",
            "FLAPS",
            "MD5",
            "LAST ERROR",
        ]);
    }
    let mut t = table(&cols);
    for p in peers {
        let established = p.state == pb::SessionState::Established as i32;
        let info = if established {
            "Established".to_string()
        } else {
            error_text(p)
        };
        let mut row = vec![
            Cell::new(&p.address),
            Cell::new(source_name(p)),
            state_cell(p),
            Cell::new(ago(p.since_seconds)),
            Cell::new(info),
        ];
        if wide {
            let counts = p
                .families
                .iter()
                .map(|f| {
                    format!(
                        "{} {}/{}/{}",
                        f.family, f.received, f.accepted, f.advertised
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            row.extend([
                Cell::new(format!("{} → {}", p.local_as, p.remote_as)),
                Cell::new(&p.source_name),
                Cell::new(counts),
                Cell::new(p.flaps),
                Cell::new(if p.md5 { "on" } else { "off" }),
                Cell::new(error_text(p)),
            ]);
        }
        t.add_row(row);
    }
    writeln!(out, "{t}")?;
    Ok(())
}

pub(crate) fn print_value<T: serde::Serialize>(
    v: &T,
    fmt: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match fmt {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(v)?)?,
        _ => write!(out, "{}", serde_saphyr::to_string(v)?)?,
    }
    Ok(())
}

fn peer_json(p: &pb::Peer) -> serde_json::Value {
    serde_json::json!({
        "address": p.address, "port": p.port, "source": source_name(p), "sourceName": p.source_name,
        "peerNode": p.peer_node, "state": state_name(p.state), "sinceSeconds": p.since_seconds,
        "localAS": p.local_as, "remoteAS": p.remote_as, "remoteRouterID": p.remote_router_id,
        "sessionType": if p.session_type == pb::SessionType::Ebgp as i32 { "eBGP" } else { "iBGP" },
        "routeReflectorClient": p.route_reflector_client, "clusterID": p.cluster_id,
        "lastError": error_text(p), "configuredHoldTime": p.configured_hold_time,
        "negotiatedHoldTime": p.negotiated_hold_time,
        "negotiatedKeepalive": p.negotiated_keepalive, "md5": p.md5,
        "ttlSecurityHops": p.ttl_security_hops, "passive": p.passive,
        "capabilities": p.capabilities, "capabilitiesSent": p.capabilities_sent,
        "capabilitiesReceived": p.capabilities_received, "gracefulRestartTime": p.graceful_restart_time,
        "staleFamilies": p.stale_families, "flaps": p.flaps,
        "families": p.families.iter().map(|f| serde_json::json!({"family": f.family,
            "received": f.received, "accepted": f.accepted, "advertised": f.advertised})).collect::<Vec<_>>(),
        "messages": p.messages.as_ref().map(|m| serde_json::json!({
            "sent": m.sent.as_ref().map(count_json), "received": m.received.as_ref().map(count_json),
        })),
    })
}

fn count_json(c: &pb::MessageCount) -> serde_json::Value {
    serde_json::json!({"open": c.open, "update": c.update, "notification": c.notification,
        "keepalive": c.keepalive, "routeRefresh": c.route_refresh})
}

/// `node status`: calicoctl's view (plus since and last error).
pub async fn node_status(path: &Path, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut c = connect(path).await?;
    let s = c.get_summary(pb::GetSummaryRequest {}).await?.into_inner();
    let peers = c
        .list_peers(pb::ListPeersRequest {})
        .await?
        .into_inner()
        .peers;
    writeln!(
        out,
        "Brindle process is running on node {} (AS {}, router id {}).",
        s.node, s.local_as, s.router_id
    )?;
    writeln!(out)?;
    writeln!(out, "IPv4 BGP status")?;
    let v4: Vec<pb::Peer> = peers
        .iter()
        .filter(|p| !p.address.contains(':'))
        .cloned()
        .collect();
    print_peers(&v4, false, out)?;
    let v6: Vec<pb::Peer> = peers
        .iter()
        .filter(|p| p.address.contains(':'))
        .cloned()
        .collect();
    writeln!(out)?;
    writeln!(out, "IPv6 BGP status")?;
    if v6.is_empty() {
        writeln!(out, "No IPv6 peers found.")?;
    } else {
        print_peers(&v6, false, out)?;
    }
    Ok(peers
        .iter()
        .all(|p| p.state == pb::SessionState::Established as i32))
}

/// `node summary`.
pub async fn node_summary(path: &Path, fmt: Format, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut c = connect(path).await?;
    let s = c.get_summary(pb::GetSummaryRequest {}).await?.into_inner();
    let v = serde_json::json!({
        "version": s.version, "node": s.node, "routerID": s.router_id, "asNumber": s.local_as,
        "uptimeSeconds": s.uptime_seconds, "datastore": s.datastore, "datastoreInSync": s.datastore_in_sync,
        "lastReconfiguredSecondsAgo": s.last_reconfigured_seconds_ago, "lastChange": s.last_change,
        "peers": s.peers_total, "establishedIPv4": s.established_ipv4, "establishedIPv6": s.established_ipv6,
        "advertised": s.advertised_prefixes, "blocks": s.blocks, "addressesInUse": s.addresses_in_use,
        "routeReflectorClusterID": s.route_reflector_cluster_id, "listenPort": s.listen_port, "notes": s.notes,
    });
    match fmt {
        Format::Json | Format::Yaml => print_value(&v, fmt, out)?,
        _ => {
            let mut t = table(&["FIELD", "VALUE"]);
            if let Some(o) = v.as_object() {
                for (k, val) in o {
                    let text = match val {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Array(a) => a
                            .iter()
                            .map(|x| {
                                x.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| x.to_string())
                            })
                            .collect::<Vec<_>>()
                            .join("\n"),
                        other => other.to_string(),
                    };
                    t.add_row(vec![Cell::new(k), Cell::new(text)]);
                }
            }
            writeln!(out, "{t}")?;
        }
    }
    Ok(true)
}

/// `bgp peers`.
pub async fn peers(path: &Path, fmt: Format, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut c = connect(path).await?;
    let peers = c
        .list_peers(pb::ListPeersRequest {})
        .await?
        .into_inner()
        .peers;
    match fmt {
        Format::Table | Format::Wide => print_peers(&peers, fmt == Format::Wide, out)?,
        _ => print_value(&peers.iter().map(peer_json).collect::<Vec<_>>(), fmt, out)?,
    }
    Ok(true)
}

/// `bgp peer ADDR`: everything about one session.
pub async fn peer(
    path: &Path,
    addr: &str,
    fmt: Format,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut c = connect(path).await?;
    let p = c
        .get_peer(pb::GetPeerRequest {
            address: addr.to_string(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let fmt = if fmt == Format::Json {
        Format::Json
    } else {
        Format::Yaml
    };
    print_value(&peer_json(&p), fmt, out)?;
    Ok(true)
}

/// What `bgp routes` asks for.
#[derive(Debug, Clone, Default)]
pub struct RouteQuery {
    /// `ipv4`, `ipv6` or empty.
    pub family: String,
    /// A prefix, an address (longest match) or empty.
    pub prefix: String,
    /// A neighbor and whether its received (true) or advertised (false) routes.
    pub adj: Option<(String, bool)>,
}

/// `bgp routes [--family F] [--peer ADDR --received|--advertised] [PREFIX|ADDRESS]`.
pub async fn routes(
    path: &Path,
    q: &RouteQuery,
    fmt: Format,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut c = connect(path).await?;
    let routes = c
        .list_routes(pb::ListRoutesRequest {
            family: q.family.clone(),
            prefix: q.prefix.clone(),
            peer: q.adj.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
            adj: match q.adj {
                None => pb::AdjRib::Unspecified,
                Some((_, true)) => pb::AdjRib::In,
                Some((_, false)) => pb::AdjRib::Out,
            } as i32,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner()
        .routes;
    let adj = q.adj.is_some();
    match fmt {
        Format::Table | Format::Wide => {
            let last = if adj { "IMPORT" } else { "FIB" };
            let mut t = table(&[
                "PREFIX", "NEXT HOP", "FROM", "AS PATH", "LOCPREF", "FLAGS", "AGE", last,
            ]);
            for r in &routes {
                for (i, p) in r.paths.iter().enumerate() {
                    let mut flags = Vec::new();
                    if p.best {
                        flags.push("best");
                    }
                    if p.multipath {
                        flags.push("multipath");
                    }
                    if p.stale {
                        flags.push("stale");
                    }
                    if p.nexthop_unreachable {
                        flags.push("nexthop-unreachable");
                    }
                    let fib = if adj {
                        match (q.adj.as_ref().is_some_and(|a| a.1), p.rejected.as_str()) {
                            (false, _) => String::new(),
                            (true, "") => "accepted".into(),
                            (true, why) => format!("rejected: {why}"),
                        }
                    } else if i > 0 {
                        String::new()
                    } else if r.fib_excluded {
                        "tunnel".to_string()
                    } else if r.fib_mismatch {
                        format!("MISMATCH kernel: {}", {
                            let k = r.fib_next_hops.join(",");
                            if k.is_empty() { "none".to_string() } else { k }
                        })
                    } else {
                        r.fib_next_hops.join(",")
                    };
                    t.add_row(vec![
                        Cell::new(if i == 0 { r.prefix.as_str() } else { "" }),
                        Cell::new(if p.next_hop.is_empty() {
                            "-"
                        } else {
                            &p.next_hop
                        }),
                        Cell::new(&p.source),
                        Cell::new(
                            p.as_path
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(" "),
                        ),
                        Cell::new(p.local_pref.map(|l| l.to_string()).unwrap_or_default()),
                        Cell::new(flags.join(",")),
                        Cell::new(if adj {
                            String::new()
                        } else {
                            ago(p.age_seconds)
                        }),
                        Cell::new(fib),
                    ]);
                }
            }
            writeln!(out, "{t}")?;
        }
        _ => {
            let v: Vec<serde_json::Value> = routes
                .iter()
                .map(|r| serde_json::json!({"prefix": r.prefix, "fib": r.fib_next_hops, "fibMismatch": r.fib_mismatch,
                    "fibExcluded": r.fib_excluded,
                    "paths": r.paths.iter().map(|p| serde_json::json!({"source": p.source, "nextHop": p.next_hop,
                        "asPath": p.as_path, "localPref": p.local_pref, "med": p.med, "communities": p.communities,
                        "largeCommunities": p.large_communities, "best": p.best, "multipath": p.multipath, "stale": p.stale, "nexthopUnreachable": p.nexthop_unreachable,
                        "rejected": p.rejected, "ageSeconds": p.age_seconds})).collect::<Vec<_>>()}))
                .collect();
            print_value(&v, fmt, out)?;
        }
    }
    Ok(true)
}

/// The summary and the sessions of one node (for the lab).
pub async fn fetch(path: &Path) -> anyhow::Result<(pb::Summary, Vec<pb::Peer>)> {
    let mut c = connect(path).await?;
    let s = c.get_summary(pb::GetSummaryRequest {}).await?.into_inner();
    let p = c
        .list_peers(pb::ListPeersRequest {})
        .await?
        .into_inner()
        .peers;
    Ok((s, p))
}
