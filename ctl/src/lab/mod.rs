//! `brindlectl lab` (the repository's `./lab`): a multi-rack Brindle fabric on one machine, in
//! network namespaces linked only to each other. Nodes run the real `brindle-node`, pods are
//! wired by the real `brindle-cni`, configuration goes in as ordinary resources (written to
//! `<dir>/manifests/` for the user to read and change), ToRs and the spine are BIRD and FRR.
//!
//! Everything the lab makes carries its marker: namespaces `brlab-<name>-*`, processes inside
//! them, files under its directory; `down` finds them by the marker, also after a crash.

mod network;
mod pods;
mod run;
pub mod topology;

use std::path::PathBuf;

use clap::Subcommand;

pub use run::{LabArgs, execute};
pub use topology::{Encap, Shape};

/// Lab subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Bring up a topology, wire pods, show the drawing, the summary and the ping matrix.
    Up {
        /// racks (ToRs with BIRD/FRR and a spine) or mesh (one L2 subnet).
        #[arg(long, value_enum, default_value_t = Shape::Racks)]
        topology: Shape,
        /// Number of racks.
        #[arg(long, default_value_t = 2)]
        racks: u32,
        /// Nodes per rack (or in the mesh).
        #[arg(long, default_value_t = 3)]
        nodes_per_rack: u32,
        /// Pods per node.
        #[arg(long, default_value_t = 1)]
        pods_per_node: u32,
        /// Encapsulation of the pod pool (ipip needs an ipip-capable kernel).
        #[arg(long, value_enum, default_value_t = Encap::None)]
        encap: Encap,
    },
    /// Remove every namespace, process and file of the lab.
    Down,
    /// Sessions, blocks and pods per node.
    Status,
    /// Ping every pod from every pod.
    Ping,
    /// Pods.
    Pod {
        #[command(subcommand)]
        command: PodCommand,
    },
    /// Run a command in a pod's namespace.
    Exec {
        /// The pod.
        pod: String,
        /// The command.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Stop or start a node's daemon.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Run brindlectl against a node's status socket and the lab's datastore.
    Brindlectl {
        /// The node.
        node: String,
        /// brindlectl's arguments.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Apply a default-deny and an allow policy and show the matrix change.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Measure convergence on the running lab: pod ADD to reachable from every node.
    Bench {
        /// Pods to add and time.
        #[arg(long, default_value_t = 20)]
        pods: u32,
    },
}

/// `lab pod ...`.
#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Add a pod through the CNI plugin.
    Add {
        /// Pod name.
        name: String,
        /// The node.
        #[arg(long)]
        node: String,
        /// Kubernetes-like namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Labels k=v,k2=v2.
        #[arg(long, default_value = "")]
        labels: String,
        /// A fixed address.
        #[arg(long)]
        ip: Option<String>,
    },
    /// Delete a pod through the CNI plugin.
    Del {
        /// Pod name.
        name: String,
    },
}

/// `lab node ...`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// SIGKILL the node's daemon (its routes stay in its kernel; peers see the session drop).
    Kill {
        /// The node.
        name: String,
    },
    /// Start the node's daemon again.
    Start {
        /// The node.
        name: String,
    },
}

/// `lab policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Default deny plus one allow rule, then the matrix.
    Demo,
}

/// Where the lab keeps its files, by name.
pub fn default_dir(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/brindle-lab/{name}"))
}
