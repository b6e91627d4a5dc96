//! The per-node policy agent.
//!
//! This crate will own the policy calculation (a pure function from the datastore's
//! NetworkPolicy, GlobalNetworkPolicy, Tier, HostEndpoint and workload state to per-endpoint rule
//! sets, using `brindle-selector`), the nftables and iptables renderers (pure, table-tested), and
//! the dataplane drivers that read back what the kernel has and apply only the difference: pod
//! routes, IPIP/VXLAN tunnel routes and NAT outgoing.
