//! `brindle-node`: the per-node daemon.
//!
//! - `brindle-node run`: registers the node, watches the datastore, runs the BGP speaker with
//!   the sessions and advertisements derived from it, and keeps them in step. SIGTERM sends
//!   Cease to every peer and leaves kernel routes in place for graceful restart.
//! - `brindle-node plan --node NAME`: prints the derived configuration (sessions, advertised
//!   prefixes) as YAML or JSON without touching the kernel or opening sockets.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use brindle_bgp_speaker::{KernelConfig, Snapshot as Status};
use brindle_node::api;
use brindle_node::dataplane::Driver;
use brindle_node::tunnel_addr;
use brindle_node::tunnels::{self, RoutePlan};

/// How often tunnel routes are re-read and repaired without a change.
const TUNNEL_RESYNC: Duration = Duration::from_secs(5);
/// How often the policy table is compared with the kernel's.
const POLICY_RESYNC: Duration = Duration::from_secs(5);
/// The kinds the policy agent watches.
const POLICY_KINDS: &[Kind] = &[
    Kind::FelixConfiguration,
    Kind::WorkloadEndpoint,
    Kind::Profile,
    Kind::Tier,
    Kind::GlobalNetworkPolicy,
    Kind::NetworkPolicy,
    Kind::NetworkSet,
    Kind::GlobalNetworkSet,
    Kind::HostEndpoint,
];
use brindle_crds::{FelixConfigurationSpec, Kind, Resource};
use brindle_felix::dataplane::Kind as PolicyKind;
use brindle_node::autodetect::{self, Method};
use brindle_node::cache::{self, NODE_KINDS};
use brindle_node::desired::desired_bgp;
use brindle_node::metrics::{self, Pages};
use brindle_node::register::{Registration, register};
use brindle_node::status::{self, NodeStatus};
use brindle_node::sync::SpeakerSync;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(name = "brindle-node", about = "Brindle's node daemon")]
struct Args {
    /// Datastore: sqlite:PATH, etcd:http://HOST:PORT, kubernetes or memory.
    #[arg(
        long,
        env = "BRINDLE_DATASTORE",
        global = true,
        default_value = "sqlite:/var/lib/brindle/brindle.db"
    )]
    datastore: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// Which packet filter enforces policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyDataplane {
    /// As FelixConfiguration's `nftablesMode` says (nftables when it works, by default).
    Auto,
    /// nftables (Brindle's own table).
    Nftables,
    /// iptables-restore with ipsets (Brindle's own chains).
    Iptables,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
// Parsed once at start; its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the node.
    Run {
        /// This node's name (default: the hostname).
        #[arg(long, env = "NODENAME")]
        node_name: Option<String>,
        /// IPv4 address or autodetection method (first-found, interface=RE, skip-interface=RE,
        /// cidr=CIDR, can-reach=DEST, ADDR/LEN, none).
        #[arg(long, env = "IP", default_value = "first-found")]
        ip: String,
        /// IPv6 address or autodetection method.
        #[arg(long, env = "IP6", default_value = "none")]
        ip6: String,
        /// This node's AS (default: the Node's, else the cluster's).
        #[arg(long = "as", env = "AS")]
        as_number: Option<u32>,
        /// Directory of secrets for BGP passwords (`<dir>/<secret>/<key>`, mode 0600).
        #[arg(long, env = "BRINDLE_SECRETS_DIR")]
        secrets_dir: Option<PathBuf>,
        /// Write the speaker's peer and route status as JSON to this file, periodically.
        #[arg(long)]
        status_file: Option<PathBuf>,
        /// The status API's Unix socket (default /var/run/brindle/<node>.sock).
        #[arg(long, env = "BRINDLE_STATUS_SOCKET")]
        status_socket: Option<PathBuf>,
        /// Serve Prometheus metrics at http://ADDR/metrics (off by default).
        #[arg(long, env = "BRINDLE_METRICS_LISTEN")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Serve /readiness and /liveness at http://ADDR (off by default).
        #[arg(long, env = "BRINDLE_HEALTH_LISTEN")]
        health_listen: Option<std::net::SocketAddr>,
        /// Status file and resync interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        status_interval_ms: u64,
        /// Do not program kernel routes (BGP only).
        #[arg(long)]
        no_kernel_routes: bool,
        /// Enforce network policy.
        #[arg(long, value_enum, default_value_t = OnOff::On, env = "BRINDLE_POLICY")]
        policy: OnOff,
        /// The packet filter that enforces it; switching removes the other's rules.
        #[arg(long, value_enum, default_value_t = PolicyDataplane::Auto, env = "BRINDLE_POLICY_DATAPLANE")]
        policy_dataplane: PolicyDataplane,
    },
    /// Print the derived configuration of a node without touching anything.
    Plan {
        /// The node.
        #[arg(long)]
        node: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
}

/// Stops a task when dropped (the HTTP listeners end with the daemon's loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn detect(
    method: &str,
    v4: bool,
    ifs: &[autodetect::Interface],
) -> anyhow::Result<(Option<ipnetwork::IpNetwork>, bool)> {
    let m = Method::parse(method)?;
    let found = match &m {
        Method::CanReach(dest) => autodetect::can_reach(dest, ifs)?,
        m => autodetect::detect(m, v4, ifs),
    };
    if found.is_none() && !matches!(m, Method::None) {
        tracing::warn!(target: "node.autodetect", method, family = if v4 { 4 } else { 6 }, "no address found; keeping the stored one");
    }
    Ok((found, matches!(m, Method::None)))
}

async fn write_status(sync: &SpeakerSync, path: &std::path::Path) -> anyhow::Result<()> {
    let Some(h) = sync.handle() else {
        return Ok(());
    };
    Ok(Status::write_file(h, path).await?)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    ds: brindle_datastore::Datastore,
    node_name: Option<String>,
    ip: String,
    ip6: String,
    as_number: Option<u32>,
    secrets_dir: Option<PathBuf>,
    status_file: Option<PathBuf>,
    status_socket: Option<PathBuf>,
    http: (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>),
    interval: Duration,
    no_kernel_routes: bool,
    policy: Option<PolicyDataplane>,
) -> anyhow::Result<()> {
    let name = node_name.unwrap_or_else(hostname);
    let ifs = autodetect::local_interfaces()?;
    let (ipv4, _) = detect(&ip, true, &ifs)?;
    let (ipv6, clear_ipv6) = detect(&ip6, false, &ifs)?;
    let reg = Registration {
        name: name.clone(),
        ipv4,
        ipv6,
        clear_ipv6,
        as_number,
    };
    register(&ds, &reg).await.context("registering the node")?;
    let kinds: Vec<Kind> = NODE_KINDS
        .iter()
        .chain(if policy.is_some() { POLICY_KINDS } else { &[] })
        .copied()
        .collect();
    let mut rx = cache::spawn(&ds, &kinds);
    let mut dataplane = brindle_felix::dataplane::Dataplane::new();
    let mut policy_applied: Option<(brindle_felix::calc::Plan, PolicyKind, std::time::Instant)> =
        None;
    let mut policy_snap: Option<Arc<cache::Snapshot>> = None;
    let nft_works = brindle_felix::dataplane::nft_works().await;
    if policy.is_none() {
        brindle_felix::dataplane::Dataplane::remove_all().await?;
    }
    let kernel = KernelConfig {
        enabled: !no_kernel_routes,
        ..KernelConfig::default()
    };
    let mut sync = SpeakerSync::new(kernel, secrets_dir);
    let mut st = NodeStatus {
        node: name.clone(),
        datastore: ds.endpoint(),
        started: Some(std::time::Instant::now()),
        ..Default::default()
    };
    let (status_tx, status_rx) = tokio::sync::watch::channel(Arc::new(st.clone()));
    let socket = status_socket.unwrap_or_else(|| api::default_socket(&name));
    let mut _http = Vec::new();
    for (addr, pages) in [(http.0, Pages::Metrics), (http.1, Pages::Health)] {
        if let Some(a) = addr {
            let (bound, task) = metrics::serve(a, pages, status_rx.clone())
                .await
                .with_context(|| format!("listening on {a} for {pages:?}"))?;
            tracing::info!(target: "node", event = "http_listening", ?pages, %bound);
            _http.push(AbortOnDrop(task));
        }
    }
    let _api = api::serve(&socket, status_rx).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let health = spawn_datastore_health(ds.clone(), name.clone());
    let mut tick = tokio::time::interval(interval);
    let mut last_err = String::new();
    let driver = if no_kernel_routes {
        None
    } else {
        Some(Driver::open()?)
    };
    let mut tunnels_applied: Option<(RoutePlan, std::time::Instant)> = None;
    let mut reported: std::collections::BTreeSet<String> = Default::default();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            r = rx.changed() => if r.is_err() { anyhow::bail!("the datastore watch ended") },
            _ = tick.tick() => {
                if let Some(p) = &status_file
                    && let Err(e) = write_status(&sync, p).await
                {
                    tracing::warn!(target: "node", event = "status_write_failed", error = %e);
                }
                if let Some(h) = sync.handle() {
                    status::collect_speaker(h, &mut st).await;
                }
                st.datastore_error = health.borrow().clone();
                st.updated = Some(std::time::Instant::now());
                let _ = status_tx.send(Arc::new(st.clone()));
            }
        }
        let snap: Arc<cache::Snapshot> = rx.borrow_and_update().clone();
        if snap.objects.is_empty() {
            continue; // not in sync yet: nothing is configured before the first full listing
        }
        st.in_sync = true;
        (st.blocks, st.addresses_in_use) = status::ipam_use(&snap, &name);
        match desired_bgp(&snap, &name) {
            Ok(d) => {
                last_err.clear();
                st.desired_error = None;
                let res = sync.apply(&d).await;
                st.desired = Some(d.clone());
                match res {
                    Ok(ch) if !ch.is_empty() => {
                        st.last_change = Some((
                            std::time::Instant::now(),
                            format!(
                                "sessions +{} ~{} -{}, prefixes +{} -{}{}",
                                ch.added.len(),
                                ch.updated.len(),
                                ch.removed.len(),
                                ch.originated.len(),
                                ch.withdrawn.len(),
                                if ch.restarted {
                                    ", instance (re)started"
                                } else {
                                    ""
                                }
                            ),
                        ));
                        tracing::info!(target: "node", event = "reconciled", added = ch.added.len(), updated = ch.updated.len(), removed = ch.removed.len(), originated = ch.originated.len(), withdrawn = ch.withdrawn.len(), restarted = ch.restarted);
                        for n in &d.notes {
                            tracing::info!(target: "node.bgp", event = "note", "{n}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(target: "node", event = "apply_failed", error = %e),
                }
            }
            Err(e) => {
                let e = e.to_string();
                st.desired_error = Some(e.clone());
                if e != last_err {
                    tracing::error!(target: "node", event = "desired_failed", error = %e);
                    last_err = e;
                }
            }
        }
        // Policy: calculated from the snapshot, rendered, applied when it changed, and checked
        // against the kernel every few seconds (a deleted or altered table is re-applied).
        let resync = policy_applied
            .as_ref()
            .is_none_or(|(_, _, at)| at.elapsed() > POLICY_RESYNC);
        let changed = policy_snap.as_ref().is_none_or(|p| !Arc::ptr_eq(p, &snap));
        if let Some(mode) = policy
            && (changed || resync)
        {
            policy_snap = Some(snap.clone());
            // IP pools (watched for the node anyway) carry NAT outgoing.
            let objs = POLICY_KINDS
                .iter()
                .chain([&Kind::IPPool])
                .filter_map(|k| snap.objects.get(k))
                .flat_map(|m| m.values());
            let mut inputs = brindle_felix::calc::inputs_from(objs);
            // Host endpoints named by address find their interface among these.
            inputs.interfaces = autodetect::local_interfaces()
                .unwrap_or_default()
                .into_iter()
                .map(|i| (i.name, i.addrs.iter().map(|a| a.ip()).collect()))
                .collect();
            let plan = brindle_felix::calc::calculate(&inputs, &name);
            let kind = match mode {
                PolicyDataplane::Nftables => PolicyKind::Nftables,
                PolicyDataplane::Iptables => PolicyKind::Iptables,
                PolicyDataplane::Auto => {
                    PolicyKind::from_mode(felix_config(&snap, &name).nftables_mode, nft_works)
                }
            };
            let due = policy_applied
                .as_ref()
                .is_none_or(|(p, k, at)| *p != plan || *k != kind || at.elapsed() > POLICY_RESYNC);
            if due {
                match dataplane.apply(kind, &plan).await {
                    Ok(wrote) => {
                        if wrote {
                            tracing::info!(target: "node.policy", event = "applied", dataplane = ?kind, endpoints = plan.endpoints.len(), policies = plan.policies.len());
                        }
                        for n in &plan.notes {
                            if reported.insert(n.clone()) {
                                tracing::warn!(target: "node.policy", event = "note", "{n}");
                            }
                        }
                        st.policy = Some(brindle_node::status::PolicyStatus {
                            kind,
                            endpoints: plan.endpoints.clone(),
                            hosts: plan
                                .hosts
                                .iter()
                                .map(|(i, h)| (i.clone(), h.normal.clone()))
                                .collect(),
                        });
                        policy_applied = Some((plan, kind, std::time::Instant::now()));
                        st.policy_error = None;
                    }
                    Err(e) => {
                        st.policy_error = Some(e.to_string());
                        if reported.insert(e.to_string()) {
                            tracing::error!(target: "node.policy", event = "apply_failed", error = %e);
                        }
                    }
                }
            }
        }
        // Tunnels and tunnel routes: on change, and every few seconds to repair what others
        // deleted.
        if let Err(e) = tunnel_addr::reconcile(&ds, &snap, &name).await
            && reported.insert(e.to_string())
        {
            tracing::error!(target: "node.tunnel", event = "tunnel_address_failed", error = %e);
        }
        let plan = tunnels::desired_routes(&snap, &name);
        let owned: Vec<brindle_bgp_wire::Prefix> = plan
            .owned_pools
            .iter()
            .filter_map(|n| brindle_bgp_speaker::config::parse_prefix(&n.to_string()).ok())
            .collect();
        st.kernel_excluded = owned.clone();
        if let Err(e) = sync.exclude_from_kernel(owned).await {
            tracing::warn!(target: "node.tunnel", event = "kernel_exclude_failed", error = %e);
        }
        let due = tunnels_applied
            .as_ref()
            .is_none_or(|(p, at)| *p != plan || at.elapsed() > TUNNEL_RESYNC);
        if let Some(drv) = &driver
            && due
        {
            let rep = drv.reconcile(&plan).await;
            for c in &rep.changed {
                tracing::info!(target: "node.tunnel", event = "changed", "{c}");
            }
            for p in rep.problems.iter().chain(&plan.notes) {
                if reported.insert(p.clone()) {
                    tracing::warn!(target: "node.tunnel", event = "problem", "{p}");
                }
            }
            st.dataplane_problems = rep.problems;
            st.dataplane_problems.extend(plan.notes.iter().cloned());
            tunnels_applied = Some((plan, std::time::Instant::now()));
        }
    }
    tracing::info!(target: "node", event = "signal", "stopping; kernel routes stay for graceful restart");
    sync.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let ds = brindle_datastore::open(&args.datastore)
            .await
            .with_context(|| format!("opening datastore {}", args.datastore))?;
        match args.command {
            Command::Plan { node, output } => {
                let snap = cache::load(&ds, NODE_KINDS).await?;
                let d = desired_bgp(&snap, &node)?;
                let text = match output {
                    Format::Yaml => serde_saphyr::to_string(&d)?,
                    Format::Json => serde_json::to_string_pretty(&d)? + "\n",
                };
                print!("{text}");
                Ok(())
            }
            Command::Run {
                node_name,
                ip,
                ip6,
                as_number,
                secrets_dir,
                status_file,
                status_socket,
                metrics_listen,
                health_listen,
                status_interval_ms,
                no_kernel_routes,
                policy,
                policy_dataplane,
            } => {
                run(
                    ds,
                    node_name,
                    ip,
                    ip6,
                    as_number,
                    secrets_dir,
                    status_file,
                    status_socket,
                    (metrics_listen, health_listen),
                    Duration::from_millis(status_interval_ms.max(100)),
                    no_kernel_routes,
                    (policy == OnOff::On).then_some(policy_dataplane),
                )
                .await
            }
        }
    })
}

/// The FelixConfiguration that applies to `node`: `default`, overridden field by field by
/// `node.<name>` where that sets one (the fields the agent reads).
fn felix_config(snap: &cache::Snapshot, node: &str) -> FelixConfigurationSpec {
    let get = |name: &str| {
        snap.objects
            .get(&Kind::FelixConfiguration)
            .into_iter()
            .flat_map(|m| m.values())
            .find_map(|r| match r {
                Resource::FelixConfiguration(f) if f.metadata.name.as_deref() == Some(name) => {
                    Some(f.spec.clone())
                }
                _ => None,
            })
    };
    let mut spec = get("default").unwrap_or_default();
    if let Some(n) = get(&format!("node.{node}")) {
        spec.nftables_mode = n.nftables_mode.or(spec.nftables_mode);
    }
    spec
}

/// How often, and how patiently, the datastore's health is read.
const HEALTH_EVERY: Duration = Duration::from_secs(3);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads this node's own Node object every few seconds (bounded by a timeout) and publishes
/// the error of the last read, None when it answered. The node keeps serving what it has
/// while the datastore is away; readiness says so.
fn spawn_datastore_health(
    ds: brindle_datastore::Datastore,
    node: String,
) -> tokio::sync::watch::Receiver<Option<String>> {
    let (tx, rx) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        let key = brindle_datastore::Key::new(Kind::Node, node);
        let mut was_ok = true;
        loop {
            let r = match tokio::time::timeout(HEALTH_TIMEOUT, ds.get(&key)).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer in {} s", HEALTH_TIMEOUT.as_secs())),
            };
            match (&r, was_ok) {
                (Some(e), true) => {
                    tracing::warn!(target: "node", event = "datastore_unreachable", error = %e, "keeping the current routes and rules");
                }
                (None, false) => tracing::info!(target: "node", event = "datastore_reachable"),
                _ => {}
            }
            was_ok = r.is_none();
            if tx.send(r).is_err() {
                return;
            }
            tokio::time::sleep(HEALTH_EVERY).await;
        }
    });
    rx
}
