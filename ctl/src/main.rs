//! `brindlectl`: Brindle's command-line tool.

mod ipam;
mod lab;
mod policy;
mod resources;
mod status;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Brindle's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "brindlectl", version, about)]
struct Cli {
    /// The datastore: sqlite:PATH, etcd:http://HOST:PORT[,...], kubernetes, or memory.
    #[arg(
        long,
        global = true,
        env = "BRINDLE_DATASTORE",
        default_value = "sqlite:/var/lib/brindle/brindle.db"
    )]
    datastore: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests (brindle.dev/v1, projectcalico.org/v3, networking.k8s.io/v1
    /// NetworkPolicy) without applying them; exit 1 when any document is invalid.
    Validate {
        /// A file or a directory (read recursively: *.yaml, *.yml, *.json). `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Create or replace resources from manifests (nothing is written if any is invalid).
    Apply {
        /// Files or directories; `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Create resources from manifests; fails for those that exist.
    Create {
        /// Files or directories; `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Show resources of a kind (ippools, bgppeers, networkpolicies, ...).
    Get {
        /// The kind, singular or plural.
        kind: String,
        /// One resource's name.
        name: Option<String>,
        /// Namespace of namespaced kinds (all namespaces when omitted for lists).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Only resources whose labels match this selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = resources::Output::Table)]
        output: resources::Output,
    },
    /// A node daemon's status (over its status API socket).
    Node {
        #[command(subcommand)]
        command: NodeCommand,
        /// The daemon's socket (default /var/run/brindle/<node>.sock).
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Ask this node's daemon (default: this host's name).
        #[arg(long, global = true)]
        node: Option<String>,
    },
    /// BGP sessions and routes of a node daemon.
    Bgp {
        #[command(subcommand)]
        command: BgpCommand,
        /// The daemon's socket (default /var/run/brindle/<node>.sock).
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Ask this node's daemon (default: this host's name).
        #[arg(long, global = true)]
        node: Option<String>,
    },
    /// Network policy as a node daemon applies it: per endpoint, with rule counters.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
        /// The daemon's socket (default /var/run/brindle/<node>.sock).
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Ask this node's daemon (default: this host's name).
        #[arg(long, global = true)]
        node: Option<String>,
    },
    /// A multi-node Brindle fabric in network namespaces on this machine (`./lab`).
    Lab {
        #[command(subcommand)]
        command: lab::LabCommand,
        /// The lab's name (namespaces are brlab-<name>-*), to run several side by side.
        #[arg(long = "lab", global = true, default_value = "lab")]
        lab_name: String,
        /// The lab's directory (default /var/run/brindle-lab/<name>).
        #[arg(long, global = true)]
        dir: Option<PathBuf>,
        /// Where brindle-node and brindle-cni are (default: next to brindlectl).
        #[arg(long, global = true)]
        bin_dir: Option<PathBuf>,
    },
    /// IP address management: usage, consistency, manual release.
    Ipam {
        #[command(subcommand)]
        command: IpamCommand,
    },
    /// Delete resources by kind and name, or those in manifests.
    Delete {
        /// The kind.
        kind: Option<String>,
        /// Names.
        names: Vec<String>,
        /// Namespace of namespaced kinds (default: default).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Delete what these manifests describe.
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// The endpoints; or one endpoint's tiers, policies, profiles and rule counters
    /// (`host:<iface>` for a host endpoint).
    Show {
        /// The endpoint's host-side interface.
        endpoint: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = status::Format::Table)]
        output: status::Format,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Sessions as calicoctl shows them, plus since and the last error; exit 1 unless all are
    /// Established.
    Status,
    /// Version, AS, router id, uptime, datastore state, session counts, IPAM use.
    Summary {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = status::Format::Table)]
        output: status::Format,
    },
}

#[derive(Debug, Subcommand)]
enum BgpCommand {
    /// Every session.
    Peers {
        /// Output format (wide adds AS, source, route counts, flaps, MD5, last error).
        #[arg(short, long, value_enum, default_value_t = status::Format::Table)]
        output: status::Format,
    },
    /// Everything about one session.
    Peer {
        /// The peer's address.
        address: String,
        /// Output format (yaml or json).
        #[arg(short, long, value_enum, default_value_t = status::Format::Yaml)]
        output: status::Format,
    },
    /// The Loc-RIB with the FIB view.
    Routes {
        /// ipv4 or ipv6.
        #[arg(long, default_value = "")]
        family: String,
        /// A prefix (exact) or an address (longest match).
        prefix: Option<String>,
        /// A neighbor: show what it sent (--received) or what we send it (--advertised).
        #[arg(long)]
        peer: Option<String>,
        /// With --peer: its Adj-RIB-In (before import policy, refusals marked).
        #[arg(long, requires = "peer", conflicts_with = "advertised")]
        received: bool,
        /// With --peer: its Adj-RIB-Out (as sent).
        #[arg(long, requires = "peer")]
        advertised: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = status::Format::Table)]
        output: status::Format,
    },
}

#[derive(Debug, Subcommand)]
enum IpamCommand {
    /// Pools with their utilisation, and each node's blocks.
    Show,
    /// Report leaks, orphaned affinities, blocks of missing nodes and duplicates; exit 1 when
    /// anything is wrong.
    Check {
        /// File with the handles of live workloads, one per line.
        #[arg(long)]
        live_handles: Option<PathBuf>,
        /// Also plan garbage collection and print what it would free (a dry run unless --yes).
        #[arg(long)]
        gc: bool,
        /// With --gc: free what the plan found due.
        #[arg(long, requires = "gc")]
        yes: bool,
        /// With --gc: free the allocations of nodes that no longer exist without waiting for
        /// the grace period.
        #[arg(long, requires = "gc")]
        missing_nodes_now: bool,
        /// Leaks younger than this are kept (e.g. 15m, 90s).
        #[arg(long, default_value = "15m")]
        grace: String,
    },
    /// Release addresses by address or by handle (idempotent).
    Release {
        /// Addresses to release.
        #[arg(long = "ip")]
        ips: Vec<std::net::IpAddr>,
        /// Handles whose addresses to release.
        #[arg(long = "handle")]
        handles: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Validate { files } => validate::run(&files, &mut std::io::stdout()),
        Command::Lab {
            command,
            lab_name: name,
            dir,
            bin_dir,
        } => (|| {
            let here = std::env::current_exe()?;
            let args = lab::LabArgs {
                dir: dir.unwrap_or_else(|| lab::default_dir(&name)),
                bin_dir: bin_dir
                    .or_else(|| here.parent().map(std::path::Path::to_path_buf))
                    .unwrap_or_default(),
                name,
            };
            lab::execute(&args, command, &mut std::io::stdout())
        })(),
        Command::Node {
            command,
            socket,
            node,
        } => {
            let path = status::socket_path(socket, node);
            with_runtime(async move {
                let out = &mut std::io::stdout();
                match command {
                    NodeCommand::Status => status::node_status(&path, out).await,
                    NodeCommand::Summary { output } => {
                        status::node_summary(&path, output, out).await
                    }
                }
            })
        }
        Command::Policy {
            command: PolicyCommand::Show { endpoint, output },
            socket,
            node,
        } => {
            let path = status::socket_path(socket, node);
            with_runtime(async move {
                policy::show(&path, endpoint.as_deref(), output, &mut std::io::stdout()).await
            })
        }
        Command::Bgp {
            command,
            socket,
            node,
        } => {
            let path = status::socket_path(socket, node);
            with_runtime(async move {
                let out = &mut std::io::stdout();
                match command {
                    BgpCommand::Peers { output } => status::peers(&path, output, out).await,
                    BgpCommand::Peer { address, output } => {
                        status::peer(&path, &address, output, out).await
                    }
                    BgpCommand::Routes {
                        family,
                        prefix,
                        peer,
                        received,
                        advertised,
                        output,
                    } => {
                        let adj = match (&peer, received, advertised) {
                            (None, ..) => None,
                            (Some(p), true, false) => Some((p.clone(), true)),
                            (Some(p), false, true) => Some((p.clone(), false)),
                            (Some(_), ..) => {
                                anyhow::bail!("--peer needs --received or --advertised")
                            }
                        };
                        let q = status::RouteQuery {
                            family,
                            prefix: prefix.unwrap_or_default(),
                            adj,
                        };
                        status::routes(&path, &q, output, out).await
                    }
                }
            })
        }
        other => run_with_datastore(&cli.datastore, other),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("brindlectl: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn with_runtime(
    f: impl std::future::Future<Output = anyhow::Result<bool>>,
) -> anyhow::Result<bool> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn run_with_datastore(spec: &str, command: Command) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        if let Some(path) = spec.strip_prefix("sqlite:")
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let ds = brindle_datastore::open(spec).await?;
        let out = &mut std::io::stdout();
        match command {
            Command::Apply { files } => resources::apply(&ds, &files, false, out).await,
            Command::Create { files } => resources::apply(&ds, &files, true, out).await,
            Command::Get {
                kind,
                name,
                namespace,
                selector,
                output,
            } => {
                resources::get(
                    &ds,
                    &kind,
                    name.as_deref(),
                    namespace.as_deref(),
                    selector.as_deref(),
                    output,
                    out,
                )
                .await
            }
            Command::Delete {
                kind,
                names,
                namespace,
                files,
            } => {
                resources::delete(
                    &ds,
                    kind.as_deref(),
                    &names,
                    namespace.as_deref(),
                    &files,
                    out,
                )
                .await
            }
            Command::Ipam { command } => match command {
                IpamCommand::Show => ipam::show(&ds, out).await,
                IpamCommand::Check {
                    live_handles,
                    gc,
                    yes,
                    missing_nodes_now,
                    grace,
                } => {
                    let grace = brindle_crds::validate::parse_duration(&grace)
                        .map_err(anyhow::Error::msg)?;
                    let args = ipam::CheckArgs {
                        live_handles,
                        gc,
                        yes,
                        missing_nodes_now,
                        grace,
                    };
                    ipam::check(&ds, &args, out).await
                }
                IpamCommand::Release { ips, handles } => {
                    if ips.is_empty() && handles.is_empty() {
                        anyhow::bail!("give --ip or --handle");
                    }
                    ipam::release(&ds, &ips, &handles, out).await
                }
            },
            Command::Validate { .. }
            | Command::Node { .. }
            | Command::Bgp { .. }
            | Command::Policy { .. }
            | Command::Lab { .. } => {
                unreachable!("handled without a datastore")
            }
        }
    })
}
