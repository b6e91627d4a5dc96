//! Driver configuration: what the core's [`SpeakerConfig`] / [`PeerConfig`] do not cover
//! (listener, sockets, kernel routes), and the YAML file format of the `brindle-bgp` daemon
//! ([`FileConfig`]) with its conversion into those types.
//!
//! Pure: parsing and validation only.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use brindle_bgp_core::{GrConfig, OriginAttrs, PeerConfig, SpeakerConfig};
use brindle_bgp_wire::{Family, Prefix};
use serde::Deserialize;

use crate::error::Error;

/// Brindle's kernel route protocol number (`ip route ... proto 80`).
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 80;
/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

/// Per-neighbor socket settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportConfig {
    /// RFC 2385 TCP MD5 password.
    pub password: Option<String>,
    /// RFC 5082 GTSM: the neighbor is at most this many hops away (1 = directly connected).
    /// Outgoing TTL becomes 255 and segments with TTL below `256 - hops` are dropped.
    pub ttl_security: Option<u8>,
    /// eBGP multihop: outgoing TTL. Without it eBGP sessions use TTL 1, iBGP the system default.
    pub multihop: Option<u8>,
}

/// One neighbor: the core's configuration plus socket settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    /// What the core needs.
    pub peer: PeerConfig,
    /// What the sockets need.
    pub transport: TransportConfig,
}

impl NeighborConfig {
    /// A neighbor with the core's defaults and no socket options.
    pub fn new(address: IpAddr, remote_as: u32) -> Self {
        NeighborConfig {
            peer: PeerConfig::new(address, remote_as),
            transport: TransportConfig::default(),
        }
    }
}

/// Kernel route installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    /// Install routes at all (off: the speaker only speaks BGP).
    pub enabled: bool,
    /// Routing table (254 = main).
    pub table: u32,
    /// Route protocol number marking our routes (80 = Brindle).
    pub protocol: u8,
    /// Route metric (priority) of our routes.
    pub metric: u32,
}

/// The default metric of our routes.
pub const DEFAULT_METRIC: u32 = 32;

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            enabled: true,
            table: MAIN_TABLE,
            protocol: DEFAULT_ROUTE_PROTOCOL,
            metric: DEFAULT_METRIC,
        }
    }
}

/// A prefix this node originates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    /// The prefix.
    pub prefix: Prefix,
    /// Its attributes.
    pub attrs: OriginAttrs,
    /// Install a blackhole route for it (the node's own address blocks).
    pub blackhole: bool,
}

/// How the speaker starts with respect to graceful restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartMode {
    /// Restarting (RFC 4724) when graceful restart is configured and routes of ours are
    /// found in the kernel; fresh otherwise.
    #[default]
    Auto,
    /// Always fresh.
    Fresh,
    /// Always restarting (when graceful restart is configured).
    Restarting,
}

/// Everything the driver needs.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The BGP instance.
    pub speaker: SpeakerConfig,
    /// Where to listen; `None` = no listener (active sessions only).
    pub listen: Option<SocketAddr>,
    /// Kernel routes.
    pub kernel: KernelConfig,
    /// Neighbors at startup.
    pub neighbors: Vec<NeighborConfig>,
    /// Originated prefixes at startup.
    pub originate: Vec<OriginConfig>,
    /// Graceful restart start mode.
    pub start: StartMode,
    /// Bytes queued for one connection above which the core holds advertisements back
    /// (flow control); it resumes once a quarter of this is left.
    pub write_queue_high: usize,
    /// Record every input of the core to this file (JSON lines, see
    /// `brindle_bgp_core::record`), for replay.
    pub record: Option<std::path::PathBuf>,
}

/// Default [`DriverConfig::write_queue_high`]: 4 MiB, about a million IPv4 prefixes packed.
pub const DEFAULT_WRITE_QUEUE_HIGH: usize = 4 << 20;

impl DriverConfig {
    /// A configuration listening on `[::]:179` with kernel routes in the main table.
    pub fn new(speaker: SpeakerConfig) -> Self {
        DriverConfig {
            speaker,
            listen: Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179)),
            kernel: KernelConfig::default(),
            neighbors: Vec::new(),
            originate: Vec::new(),
            start: StartMode::Auto,
            write_queue_high: DEFAULT_WRITE_QUEUE_HIGH,
            record: None,
        }
    }
}

/// Parse `a.b.c.d/n` or `x::/n` into a [`Prefix`] (host bits must be zero).
pub fn parse_prefix(s: &str) -> Result<Prefix, Error> {
    let bad = |r: &str| Error::config(format!("prefix {s:?}"), r.to_string());
    let (a, l) = s.split_once('/').ok_or_else(|| bad("missing /length"))?;
    let len: u8 = l.parse().map_err(|_| bad("bad length"))?;
    let addr: IpAddr = a.parse().map_err(|_| bad("bad address"))?;
    let p = match addr {
        IpAddr::V4(a) => Prefix::v4(a, len),
        IpAddr::V6(a) => Prefix::v6(a, len),
    }
    .ok_or_else(|| bad("length out of range"))?;
    let same = match p {
        Prefix::V4(n, _) => IpAddr::V4(n) == addr,
        Prefix::V6(n, _) => IpAddr::V6(n) == addr,
    };
    if !same {
        return Err(bad("host bits set"));
    }
    Ok(p)
}

// ---------------------------------------------------------------------------------------
// The YAML file of the `brindle-bgp` daemon.

/// The `brindle-bgp` configuration file (YAML). See `docs/bgp-speaker.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Listen address (default `::`, dual stack).
    #[serde(default = "default_listen_address")]
    pub listen_address: IpAddr,
    /// Listen port (default 179); 0 disables the listener.
    #[serde(default = "default_port")]
    pub listen_port: u16,
    /// Route reflector cluster id (default: the router id).
    #[serde(default)]
    pub cluster_id: Option<Ipv4Addr>,
    /// ECMP paths to install (default 1).
    #[serde(default = "one")]
    pub max_paths: u8,
    /// ECMP across different neighbor ASes.
    #[serde(default)]
    pub multipath_relax: bool,
    /// First IdleHold delay after an error, seconds (default 5).
    #[serde(default)]
    pub idle_hold_seconds: Option<u64>,
    /// Graceful restart; absent = off.
    #[serde(default)]
    pub graceful_restart: Option<GrFileConfig>,
    /// Kernel routes.
    #[serde(default)]
    pub kernel: KernelFileConfig,
    /// Prefixes to originate.
    #[serde(default)]
    pub originate: Vec<OriginFileConfig>,
    /// Neighbors.
    #[serde(default)]
    pub peers: Vec<PeerFileConfig>,
    /// Bytes queued for one connection above which advertisements are held back (default
    /// 4 MiB).
    #[serde(default)]
    pub write_queue_bytes: Option<usize>,
    /// Max-prefix limits of neighbors without their own, per session type.
    #[serde(default)]
    pub default_max_prefixes: Option<DefaultMaxPrefixes>,
}

/// `default_max_prefixes:` section.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultMaxPrefixes {
    /// eBGP neighbors.
    #[serde(default)]
    pub ebgp: Option<u32>,
    /// iBGP neighbors.
    #[serde(default)]
    pub ibgp: Option<u32>,
}

fn default_listen_address() -> IpAddr {
    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}
fn default_port() -> u16 {
    179
}
fn one() -> u8 {
    1
}
fn yes() -> bool {
    true
}

/// `graceful_restart:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrFileConfig {
    /// Restart time we advertise, seconds (default 120).
    #[serde(default)]
    pub restart_time: Option<u16>,
    /// Helper: how long stale routes are kept after the neighbor came back, seconds.
    #[serde(default)]
    pub stale_time: Option<u64>,
    /// Restarting: longest wait for End-of-RIBs, seconds.
    #[serde(default)]
    pub selection_deferral: Option<u64>,
    /// `auto` (default), `fresh` or `restarting`.
    #[serde(default)]
    pub start: Option<String>,
}

/// `kernel:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelFileConfig {
    /// Install routes (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Table (default 254, main).
    #[serde(default)]
    pub table: Option<u32>,
    /// Route protocol number (default 80).
    #[serde(default)]
    pub protocol: Option<u8>,
    /// Route metric (default 32).
    #[serde(default)]
    pub metric: Option<u32>,
}

impl Default for KernelFileConfig {
    fn default() -> Self {
        KernelFileConfig {
            enabled: true,
            table: None,
            protocol: None,
            metric: None,
        }
    }
}

/// One `originate:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginFileConfig {
    /// The prefix, e.g. `198.19.1.0/26`.
    pub prefix: String,
    /// Install a blackhole route for it (default false).
    #[serde(default)]
    pub blackhole: bool,
    /// MED.
    #[serde(default)]
    pub med: Option<u32>,
    /// LOCAL_PREF towards iBGP neighbors.
    #[serde(default)]
    pub local_pref: Option<u32>,
}

/// One `peers:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFileConfig {
    /// Neighbor address.
    pub address: IpAddr,
    /// Neighbor AS.
    #[serde(alias = "as")]
    pub remote_as: u32,
    /// Port to connect to (default 179).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Only accept connections.
    #[serde(default)]
    pub passive: bool,
    /// TCP MD5 password.
    #[serde(default)]
    pub password: Option<String>,
    /// GTSM: maximum hops to the neighbor (1 = directly connected).
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// eBGP multihop TTL.
    #[serde(default)]
    pub multihop: Option<u8>,
    /// Route reflector client.
    #[serde(default)]
    pub route_reflector_client: bool,
    /// Next hop self towards this neighbor.
    #[serde(default)]
    pub next_hop_self: bool,
    /// `ipv4`, `ipv6` (default: the address's family).
    #[serde(default)]
    pub families: Option<Vec<String>>,
    /// Hold time, seconds (default 90).
    #[serde(default)]
    pub hold_time: Option<u16>,
    /// Keepalive, seconds (default hold / 3).
    #[serde(default)]
    pub keepalive: Option<u16>,
    /// ConnectRetry, seconds (default 120).
    #[serde(default)]
    pub connect_retry: Option<u64>,
    /// Source address (also next hop self).
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// IPv4 next hop self on an IPv6 session.
    #[serde(default)]
    pub next_hop_v4: Option<Ipv4Addr>,
    /// IPv6 next hop self on an IPv4 session.
    #[serde(default)]
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Graceful restart with this neighbor (default: on when the speaker has it).
    #[serde(default)]
    pub graceful_restart: Option<bool>,
    /// Max accepted prefixes.
    #[serde(default)]
    pub max_prefixes: Option<u32>,
    /// RFC 9687 send hold time, seconds (default: the greater of 480 and twice the hold
    /// time).
    #[serde(default)]
    pub send_hold_time: Option<u64>,
    /// Accept routes whose AS_PATH holds our AS up to this many times.
    #[serde(default)]
    pub allow_as_in: u8,
    /// Keep the original next hop towards this eBGP neighbor.
    #[serde(default)]
    pub keep_original_next_hop: bool,
    /// Keep routes import policy refuses (BIRD's `import keep filtered`).
    #[serde(default)]
    pub soft_reconfiguration_inbound: bool,
    /// Import rules (BGPFilter spelling), first match wins, default accept.
    #[serde(default)]
    pub import: Vec<crate::file_filter::FilterFileRule>,
    /// Export rules (BGPFilter spelling), first match wins, default accept.
    #[serde(default)]
    pub export: Vec<crate::file_filter::FilterFileRule>,
}

impl FileConfig {
    /// Parse YAML text.
    pub fn from_yaml(text: &str) -> Result<FileConfig, Error> {
        serde_saphyr::from_str(text).map_err(|e| Error::config("yaml", e.to_string()))
    }

    /// Convert into a [`DriverConfig`], validating every field.
    pub fn into_driver(self) -> Result<DriverConfig, Error> {
        if self.local_as == 0 {
            return Err(Error::config("local_as", "AS 0 is reserved (RFC 7607)"));
        }
        if self.router_id.is_unspecified() {
            return Err(Error::config(
                "router_id",
                "0.0.0.0 is not a valid BGP identifier (RFC 6286)",
            ));
        }
        if self.idle_hold_seconds == Some(0) {
            return Err(Error::config(
                "idle_hold_seconds",
                "at least 1: 0 would reconnect in a tight loop after every error",
            ));
        }
        let mut speaker = SpeakerConfig::new(self.local_as, self.router_id);
        speaker.cluster_id = self.cluster_id;
        speaker.max_paths = self.max_paths.max(1);
        speaker.multipath_relax = self.multipath_relax;
        if let Some(d) = self.default_max_prefixes {
            speaker.default_max_prefixes_ebgp = d.ebgp;
            speaker.default_max_prefixes_ibgp = d.ibgp;
        }
        if let Some(s) = self.idle_hold_seconds {
            speaker.idle_hold_initial = Duration::from_secs(s);
        }
        let mut start = StartMode::Auto;
        if let Some(g) = &self.graceful_restart {
            let mut gr = GrConfig::default();
            if let Some(t) = g.restart_time {
                if t > 4095 {
                    return Err(Error::config(
                        "graceful_restart.restart_time",
                        "at most 4095",
                    ));
                }
                gr.restart_time = t;
            }
            if let Some(s) = g.stale_time {
                gr.stale_time = Duration::from_secs(s);
            }
            if let Some(s) = g.selection_deferral {
                gr.selection_deferral = Duration::from_secs(s);
            }
            start = match g.start.as_deref() {
                None | Some("auto") => StartMode::Auto,
                Some("fresh") => StartMode::Fresh,
                Some("restarting") => StartMode::Restarting,
                Some(o) => {
                    return Err(Error::config(
                        "graceful_restart.start",
                        format!("{o:?}: expected auto, fresh or restarting"),
                    ));
                }
            };
            speaker.graceful_restart = Some(gr);
        }
        let gr_on = speaker.graceful_restart.is_some();
        let listen = (self.listen_port != 0)
            .then_some(SocketAddr::new(self.listen_address, self.listen_port));
        let kernel = KernelConfig {
            enabled: self.kernel.enabled,
            table: self.kernel.table.unwrap_or(MAIN_TABLE),
            protocol: self.kernel.protocol.unwrap_or(DEFAULT_ROUTE_PROTOCOL),
            metric: self.kernel.metric.unwrap_or(DEFAULT_METRIC),
        };
        let mut originate = Vec::new();
        for o in self.originate {
            originate.push(OriginConfig {
                prefix: parse_prefix(&o.prefix)?,
                attrs: OriginAttrs {
                    med: o.med,
                    local_pref: o.local_pref,
                    ..OriginAttrs::default()
                },
                blackhole: o.blackhole,
            });
        }
        let mut neighbors = Vec::new();
        let mut seen = BTreeSet::new();
        for p in self.peers {
            if !seen.insert(p.address) {
                return Err(Error::config(
                    format!("peers[{}]", p.address),
                    "duplicate address",
                ));
            }
            neighbors.push(p.into_neighbor(gr_on)?);
        }
        let write_queue_high = match self.write_queue_bytes {
            None => DEFAULT_WRITE_QUEUE_HIGH,
            Some(b) if b >= 4096 => b,
            Some(_) => {
                return Err(Error::config(
                    "write_queue_bytes",
                    "at least 4096: one full-size BGP message",
                ));
            }
        };
        Ok(DriverConfig {
            speaker,
            listen,
            kernel,
            neighbors,
            originate,
            start,
            write_queue_high,
            record: None,
        })
    }
}

impl PeerFileConfig {
    fn into_neighbor(self, gr_on: bool) -> Result<NeighborConfig, Error> {
        let field = |f: &str| format!("peers[{}].{f}", self.address);
        if self.remote_as == 0 {
            return Err(Error::config(
                field("remote_as"),
                "AS 0 is reserved (RFC 7607)",
            ));
        }
        let mut peer = PeerConfig::new(self.address, self.remote_as);
        peer.port = self.port;
        peer.passive = self.passive;
        if let Some(h) = self.hold_time {
            if h != 0 && h < 3 {
                return Err(Error::config(field("hold_time"), "0 or at least 3"));
            }
            peer.hold_time = h;
        }
        peer.keepalive = self.keepalive;
        if let Some(c) = self.connect_retry {
            peer.connect_retry = Duration::from_secs(c.max(1));
        }
        peer.route_reflector_client = self.route_reflector_client;
        peer.next_hop_self = self.next_hop_self;
        peer.local_address = self.local_address;
        peer.next_hop_v4 = self.next_hop_v4;
        peer.next_hop_v6 = self.next_hop_v6;
        peer.max_prefixes = self.max_prefixes;
        peer.allow_as_in = self.allow_as_in;
        peer.soft_reconfiguration_inbound = self.soft_reconfiguration_inbound;
        peer.keep_original_next_hop = self.keep_original_next_hop;
        peer.import = crate::file_filter::rules(&self.import, &field("import"))?;
        peer.export = crate::file_filter::rules(&self.export, &field("export"))?;
        match self.send_hold_time {
            Some(0) => return Err(Error::config(field("send_hold_time"), "at least 1 second")),
            s => peer.send_hold_time = s.map(Duration::from_secs),
        }
        peer.graceful_restart = self.graceful_restart.unwrap_or(gr_on) && gr_on;
        if let Some(fams) = &self.families {
            let mut set = BTreeSet::new();
            for f in fams {
                set.insert(match f.as_str() {
                    "ipv4" | "ipv4-unicast" => Family::IPV4_UNICAST,
                    "ipv6" | "ipv6-unicast" => Family::IPV6_UNICAST,
                    o => {
                        return Err(Error::config(
                            field("families"),
                            format!("{o:?}: expected ipv4 or ipv6"),
                        ));
                    }
                });
            }
            if set.is_empty() {
                return Err(Error::config(field("families"), "empty"));
            }
            peer.families = set;
        }
        if let Some(pw) = &self.password
            && (pw.is_empty() || pw.len() > crate::sockopt::MD5_MAX_KEY_LEN)
        {
            return Err(Error::config(field("password"), "1 to 80 bytes"));
        }
        if self.ttl_security == Some(0) {
            return Err(Error::config(field("ttl_security"), "at least 1 hop"));
        }
        if self.ttl_security.is_some() && self.multihop.is_some() {
            return Err(Error::config(
                field("multihop"),
                "cannot be combined with ttl_security",
            ));
        }
        Ok(NeighborConfig {
            peer,
            transport: TransportConfig {
                password: self.password,
                ttl_security: self.ttl_security,
                multihop: self.multihop,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let text = r#"
local_as: 65001
router_id: 198.18.0.1
listen_address: "::"
listen_port: 1790
cluster_id: 198.18.0.1
max_paths: 4
graceful_restart:
  restart_time: 60
  selection_deferral: 30
kernel:
  table: 100
  protocol: 81
originate:
  - prefix: 198.19.1.0/26
    blackhole: true
  - prefix: "2001:db8:1::/64"
peers:
  - address: 198.18.0.2
    remote_as: 65002
    password: s3cret
    ttl_security: 1
    families: [ipv4, ipv6]
    hold_time: 9
    connect_retry: 2
  - address: "2001:db8::2"
    as: 65001
    passive: true
    route_reflector_client: true
    graceful_restart: false
"#;
        let d = FileConfig::from_yaml(text)
            .and_then(FileConfig::into_driver)
            .expect("valid");
        assert_eq!(d.speaker.max_paths, 4);
        assert_eq!(d.kernel.table, 100);
        assert_eq!(d.kernel.protocol, 81);
        assert_eq!(d.listen.map(|l| l.port()), Some(1790));
        assert_eq!(d.originate.len(), 2);
        assert!(d.originate[0].blackhole);
        assert_eq!(d.neighbors[0].peer.families.len(), 2);
        assert!(d.neighbors[0].peer.graceful_restart);
        assert_eq!(d.neighbors[0].transport.ttl_security, Some(1));
        assert!(d.neighbors[1].peer.passive);
        assert!(!d.neighbors[1].peer.graceful_restart);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = FileConfig::from_yaml("local_as: 1\nrouter_id: 198.18.0.1\nbogus: 1\n");
        assert!(e.is_err());
        let e = FileConfig::from_yaml(
            "local_as: 1\nrouter_id: 198.18.0.1\noriginate:\n  - prefix: 198.18.0.1/24\n",
        )
        .and_then(FileConfig::into_driver)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("host bits"), "{e}");
    }

    #[test]
    fn peer_filters_parse_and_errors_name_the_rule() {
        use brindle_bgp_core::{FilterAction, FilterRule, MatchOperator};
        let base = "local_as: 1\nrouter_id: 198.18.0.1\npeers:\n  - address: 198.18.0.2\n    remote_as: 2\n";
        let d = FileConfig::from_yaml(&format!(
            "{base}    allow_as_in: 1\n    import:\n      - {{ action: Reject, matchOperator: In, cidr: 198.20.0.0/16 }}\n      - {{ action: Accept, cidr: 198.19.0.0/16, prefixLength: {{ min: 24, max: 28 }} }}\n      - {{ action: Reject }}\n    export:\n      - {{ action: reject, matchOperator: Equal, cidr: 198.18.101.0/24 }}\n"
        ))
        .and_then(FileConfig::into_driver)
        .expect("valid");
        let p = &d.neighbors[0].peer;
        assert_eq!(p.allow_as_in, 1);
        let pf = |s: &str| parse_prefix(s).expect("prefix");
        assert_eq!(
            p.import,
            vec![
                FilterRule::cidr(FilterAction::Reject, pf("198.20.0.0/16"), MatchOperator::In),
                FilterRule::cidr(FilterAction::Accept, pf("198.19.0.0/16"), MatchOperator::In)
                    .with_len(Some(24), Some(28)),
                FilterRule::any(FilterAction::Reject),
            ]
        );
        assert_eq!(
            p.export,
            vec![FilterRule::cidr(
                FilterAction::Reject,
                pf("198.18.101.0/24"),
                MatchOperator::Equal
            )]
        );
        let err = |rules: &str| {
            FileConfig::from_yaml(&format!("{base}    import:\n{rules}"))
                .and_then(FileConfig::into_driver)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let e = err("      - { action: Accept }\n      - { action: Drop }\n");
        assert!(e.contains("peers[198.18.0.2].import[1].action"), "{e}");
        let e = err("      - { action: Accept, matchOperator: Inside, cidr: 10.0.0.0/8 }\n");
        assert!(e.contains("import[0].matchOperator"), "{e}");
        let e = err("      - { action: Accept, matchOperator: NotIn }\n");
        assert!(e.contains("needs a cidr"), "{e}");
        let e = err("      - { action: Accept, cidr: 10.0.0.0/8, prefixLength: { max: 33 } }\n");
        assert!(e.contains("import[0].prefixLength.max"), "{e}");
        let e = err("      - { action: Accept, prefixLength: { min: 28, max: 24 } }\n");
        assert!(e.contains("min is greater than max"), "{e}");
    }

    #[test]
    fn reserved_values_are_refused() {
        let err = |yaml: &str| {
            FileConfig::from_yaml(yaml)
                .and_then(FileConfig::into_driver)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("local_as: 0\nrouter_id: 198.18.0.1\n").contains("local_as"));
        assert!(err("local_as: 1\nrouter_id: 0.0.0.0\n").contains("router_id"));
        assert!(
            err("local_as: 1\nrouter_id: 198.18.0.1\nidle_hold_seconds: 0\n")
                .contains("idle_hold_seconds")
        );
        let e = err(
            "local_as: 1\nrouter_id: 198.18.0.1\npeers:\n  - address: 198.18.0.2\n    remote_as: 0\n",
        );
        assert!(e.contains("peers[198.18.0.2].remote_as"), "{e}");
    }
}
