//! The lab's topology as data, and everything rendered from it: namespaces, addresses, the
//! BIRD and FRR configurations of the ToRs and the spine, and the Brindle resources the lab
//! applies with `brindlectl apply`. Pure.
//!
//! Racks (default): rack r is the L2 subnet 198.18.r.0/24 behind its ToR (a bridge in the ToR's
//! namespace, the ToR at .1), nodes at .11, .12, ...; the rack is AS 6500r, the ToR is the route
//! reflector of its nodes (Calico's "AS per rack"), and the ToRs peer with a spine (AS 65000)
//! over 198.18.0.(4r-3)/30. Odd racks run BIRD, even racks FRR. Mesh: one L2 subnet
//! 198.18.1.0/24 (a bridge in a switch namespace), the node-to-node mesh, no routers.

use serde::{Deserialize, Serialize};

/// How the nodes are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Shape {
    /// Racks behind ToRs joined by a spine.
    Racks,
    /// One L2 subnet, node-to-node mesh.
    Mesh,
}

/// Encapsulation of the pod pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Encap {
    /// Plain routing.
    None,
    /// VXLAN to every other node.
    Vxlan,
    /// VXLAN only across subnets (racks).
    VxlanCrosssubnet,
    /// IPIP to every other node (needs the ipip module).
    Ipip,
}

/// Which routing daemon a router runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Router {
    /// BIRD 2.
    Bird,
    /// FRR (zebra + bgpd).
    Frr,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabNode {
    /// Node name (`r1-n1`).
    pub name: String,
    /// Its rack (1-based; 1 in mesh mode).
    pub rack: u32,
    /// Its address.
    pub ip: String,
    /// Its AS.
    pub asn: u32,
}

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Lab instance name (namespaces are `brlab-<name>-...`).
    pub name: String,
    /// Racks or mesh.
    pub shape: Shape,
    /// Number of racks (1 in mesh mode).
    pub racks: u32,
    /// Pod pool encapsulation.
    pub encap: Encap,
    /// The nodes.
    pub nodes: Vec<LabNode>,
}

/// The AS of the spine.
pub const SPINE_AS: u32 = 65000;
/// The AS of nodes in mesh mode.
pub const MESH_AS: u32 = 64512;

/// The AS of rack `r`.
pub fn rack_as(r: u32) -> u32 {
    65000 + r
}

impl Topology {
    /// Builds a topology; at most 50 racks and 200 nodes per rack fit the address plan.
    pub fn new(
        name: &str,
        shape: Shape,
        racks: u32,
        nodes_per_rack: u32,
        encap: Encap,
    ) -> Result<Topology, String> {
        let racks = if shape == Shape::Mesh { 1 } else { racks };
        if racks == 0 || racks > 50 {
            return Err(format!("{racks} racks: 1 to 50"));
        }
        if nodes_per_rack == 0 || nodes_per_rack > 200 {
            return Err(format!("{nodes_per_rack} nodes per rack: 1 to 200"));
        }
        if name.is_empty()
            || name.len() > 8
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(format!(
                "lab name {name:?}: 1 to 8 lower-case letters or digits"
            ));
        }
        let mut nodes = Vec::new();
        for r in 1..=racks {
            for i in 1..=nodes_per_rack {
                nodes.push(LabNode {
                    name: if shape == Shape::Mesh {
                        format!("node-{i}")
                    } else {
                        format!("r{r}-n{i}")
                    },
                    rack: r,
                    ip: format!("198.18.{r}.{}", 10 + i),
                    asn: if shape == Shape::Mesh {
                        MESH_AS
                    } else {
                        rack_as(r)
                    },
                });
            }
        }
        Ok(Topology {
            name: name.to_string(),
            shape,
            racks,
            encap,
            nodes,
        })
    }

    /// A namespace of this lab.
    pub fn ns(&self, short: &str) -> String {
        format!("brlab-{}-{short}", self.name)
    }

    /// The namespace prefix that marks this lab's namespaces.
    pub fn marker(&self) -> String {
        format!("brlab-{}-", self.name)
    }

    /// Which daemon rack `r`'s ToR runs.
    pub fn tor_router(r: u32) -> Router {
        if r % 2 == 1 {
            Router::Bird
        } else {
            Router::Frr
        }
    }

    /// The ToR's address on the spine link of rack `r`, and the spine's.
    pub fn spine_link(r: u32) -> (String, String) {
        let base = 4 * (r - 1);
        (
            format!("198.18.0.{}", base + 2),
            format!("198.18.0.{}", base + 1),
        )
    }

    /// BIRD configuration of rack `r`'s ToR.
    pub fn bird_tor(&self, r: u32) -> String {
        let asn = rack_as(r);
        let (mine, spine) = Self::spine_link(r);
        let mut c = format!(
            "router id 198.18.{r}.1;\n\
             protocol device {{}}\n\
             protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
             protocol direct {{ ipv4; interface \"br0\"; }}\n\
             template bgp node {{\n  local 198.18.{r}.1 as {asn};\n  rr client;\n  direct;\n  \
             connect retry time 2; error wait time 1, 5;\n  \
             ipv4 {{ import all; export all; next hop self ebgp; }};\n}}\n\
             protocol bgp spine {{\n  local {mine} as {asn}; neighbor {spine} as {SPINE_AS};\n  \
             connect retry time 2; error wait time 1, 5;\n  ipv4 {{ import all; export all; }};\n}}\n"
        );
        for n in self.nodes.iter().filter(|n| n.rack == r) {
            c.push_str(&format!(
                "protocol bgp {} from node {{ neighbor {} as {asn}; }}\n",
                n.name.replace('-', "_"),
                n.ip
            ));
        }
        c
    }

    /// FRR configuration of rack `r`'s ToR.
    pub fn frr_tor(&self, r: u32) -> String {
        let asn = rack_as(r);
        let (_, spine) = Self::spine_link(r);
        let mut c = format!(
            "frr defaults traditional\nhostname tor{r}\nlog stdout informational\n\
             router bgp {asn}\n bgp router-id 198.18.{r}.1\n no bgp ebgp-requires-policy\n\
             neighbor {spine} remote-as {SPINE_AS}\n neighbor {spine} timers connect 2\n\
             address-family ipv4 unicast\n  network 198.18.{r}.0/24\n exit-address-family\n"
        );
        let rack_nodes: Vec<&LabNode> = self.nodes.iter().filter(|n| n.rack == r).collect();
        for n in &rack_nodes {
            c.push_str(&format!(
                " neighbor {ip} remote-as {asn}\n neighbor {ip} timers connect 2\n",
                ip = n.ip
            ));
        }
        c.push_str(" address-family ipv4 unicast\n");
        for n in &rack_nodes {
            c.push_str(&format!(
                "  neighbor {ip} route-reflector-client\n  neighbor {ip} next-hop-self\n",
                ip = n.ip
            ));
        }
        c.push_str(" exit-address-family\n");
        c
    }

    /// BIRD configuration of the spine.
    pub fn bird_spine(&self) -> String {
        let mut c = "router id 198.18.0.1;\nprotocol device {}\n\
                     protocol kernel { ipv4 { import none; export all; }; merge paths on; }\n"
            .to_string();
        for r in 1..=self.racks {
            let (tor, mine) = Self::spine_link(r);
            c.push_str(&format!(
                "protocol bgp rack{r} {{ local {mine} as {SPINE_AS}; neighbor {tor} as {};\n  \
                 connect retry time 2; error wait time 1, 5; ipv4 {{ import all; export all; }}; }}\n",
                rack_as(r)
            ));
        }
        c
    }

    /// The resources the lab applies (ordinary manifests the user can read and change).
    pub fn manifests(&self) -> String {
        let encap = match self.encap {
            Encap::None => "",
            Encap::Vxlan => "  vxlanMode: Always\n",
            Encap::VxlanCrosssubnet => "  vxlanMode: CrossSubnet\n",
            Encap::Ipip => "  ipipMode: Always\n",
        };
        let mut docs = vec![format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: lab-pods\nspec:\n  \
             cidr: 198.19.0.0/16\n  blockSize: 26\n  natOutgoing: false\n{encap}"
        )];
        match self.shape {
            Shape::Mesh => docs.push(format!(
                "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  \
                 nodeToNodeMeshEnabled: true\n  asNumber: {MESH_AS}\n"
            )),
            Shape::Racks => {
                docs.push(
                    "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  \
                     nodeToNodeMeshEnabled: false\n"
                        .to_string(),
                );
                for r in 1..=self.racks {
                    docs.push(format!(
                        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rack{r}-tor\nspec:\n  \
                         nodeSelector: rack == 'rack{r}'\n  peerIP: 198.18.{r}.1\n  asNumber: {}\n",
                        rack_as(r)
                    ));
                }
            }
        }
        for n in &self.nodes {
            docs.push(format!(
                "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {}\n  labels:\n    rack: rack{}\nspec:\n  \
                 bgp:\n    ipv4Address: {}/24\n    asNumber: {}\n",
                n.name, n.rack, n.ip, n.asn
            ));
        }
        docs.join("---\n")
    }

    /// A drawing of the topology.
    pub fn drawing(&self) -> String {
        let mut s = String::new();
        match self.shape {
            Shape::Mesh => {
                s.push_str(&format!(
                    "  L2 subnet 198.18.1.0/24, node-to-node mesh, AS {MESH_AS}\n"
                ));
                for n in &self.nodes {
                    s.push_str(&format!("    ├─ {} {}\n", n.name, n.ip));
                }
            }
            Shape::Racks => {
                s.push_str(&format!("                 spine (BIRD, AS {SPINE_AS})\n"));
                for r in 1..=self.racks {
                    let d = match Self::tor_router(r) {
                        Router::Bird => "BIRD",
                        Router::Frr => "FRR",
                    };
                    s.push_str(&format!(
                        "  ├─ rack{r}: ToR {d} 198.18.{r}.1, AS {}, route reflector of its nodes\n",
                        rack_as(r)
                    ));
                    for n in self.nodes.iter().filter(|n| n.rack == r) {
                        s.push_str(&format!("  │    ├─ {} {}\n", n.name, n.ip));
                    }
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan() {
        let t = Topology::new("lab", Shape::Racks, 2, 3, Encap::None).unwrap();
        assert_eq!(t.nodes.len(), 6);
        assert_eq!(t.nodes[3].name, "r2-n1");
        assert_eq!(t.nodes[3].ip, "198.18.2.11");
        assert_eq!(t.nodes[3].asn, 65002);
        assert_eq!(
            Topology::spine_link(2),
            ("198.18.0.6".into(), "198.18.0.5".into())
        );
        assert!(
            t.bird_tor(1)
                .contains("protocol bgp r1_n3 from node { neighbor 198.18.1.13 as 65001; }")
        );
        assert!(
            t.frr_tor(2)
                .contains("neighbor 198.18.2.12 route-reflector-client")
        );
        assert!(t.manifests().contains("nodeSelector: rack == 'rack2'"));
        assert!(Topology::new("Bad", Shape::Mesh, 1, 1, Encap::None).is_err());
        assert!(Topology::new("lab", Shape::Racks, 51, 1, Encap::None).is_err());
        let v = Topology::new("lab", Shape::Racks, 2, 1, Encap::VxlanCrosssubnet).unwrap();
        assert!(v.manifests().contains("vxlanMode: CrossSubnet"));
    }
}
