//! Reachability matrices on both dataplanes: six pods in three Kubernetes namespaces (x, y, z;
//! pods a and b in each) wired into a node namespace, plus the node itself. For each case the
//! policies are calculated, rendered and applied by the real driver (nftables, then iptables
//! with ipsets), then TCP, UDP and ICMP are probed from every source to every destination and
//! the whole matrix compared with the expected one. Cases in the style of the upstream
//! Kubernetes network-policy e2e tests, and Calico-only ones (tiers with Pass, Log, GNP,
//! notNets, selectors with notSelector, NetworkSets and GlobalNetworkSets, service accounts);
//! NAT outgoing.
//!
//! The node's own traffic to a pod is not policed (Kubernetes: traffic from the node is
//! always allowed); a pod's traffic to the node goes through the pod's egress policy.

use std::net::IpAddr;

use brindle_crds::Resource;
use brindle_crds::document::parse_resources;
use brindle_felix::calc::{Plan, calculate, inputs_from};
use brindle_felix::driver::Driver;
use brindle_felix::ipt_driver::IptDriver;
use brindle_felix::{ipt, nft};
use brindle_tests::netns::*;
use brindle_tests::probe::{Host, Proto, Servers, expected, matrix, table};

const PODS: [(&str, &str, &str); 6] = [
    ("x", "a", "198.19.0.1"),
    ("x", "b", "198.19.0.2"),
    ("y", "a", "198.19.0.3"),
    ("y", "b", "198.19.0.4"),
    ("z", "a", "198.19.0.5"),
    ("z", "b", "198.19.0.6"),
];
const HOST_IP: &str = "198.18.0.1";

fn endpoints() -> String {
    let mut s = String::new();
    for (ns, pod, ip) in PODS {
        s.push_str(&format!(
            "---\napiVersion: brindle.dev/v1\nkind: WorkloadEndpoint\n\
             metadata: {{name: node--1-k8s-{pod}-eth0, namespace: '{ns}', labels: {{pod: {pod}}}}}\n\
             spec: {{orchestrator: k8s, node: node-1, pod: {pod}, endpoint: eth0, \
             serviceAccountName: sa-{pod}, \
             interfaceName: cali{ns}{pod}, ipNetworks: [{ip}/32], profiles: [kns.{ns}], \
             ports: [{{name: http, protocol: TCP, port: 81}}]}}\n"
        ));
    }
    s
}

fn plan_of(policies: &str) -> Plan {
    plan_text(&format!("{}---\n{policies}", endpoints()))
}

/// node-1's plan for these manifests (which must compile without notes).
fn plan_text(text: &str) -> Plan {
    let rs: Vec<Resource> = parse_resources(text)
        .unwrap()
        .into_iter()
        .map(|d| d.result.unwrap_or_else(|e| panic!("{}: {e:?}", d.label)))
        .collect();
    let plan = calculate(&inputs_from(&rs), "node-1");
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    plan
}

/// A node namespace (forwarding) and an "outside" host on its `eth1` (198.18.50.1 and .2),
/// which routes `back` through the node.
fn node_and_outside(lab: &mut Lab, back: &str) -> (String, String) {
    let node_ns = lab.ns("node");
    lab.forwarding(&node_ns);
    let outside = lab.ns("outside");
    lab.link(
        &node_ns,
        "eth1",
        &["198.18.50.1/24"],
        &outside,
        "eth0",
        &["198.18.50.2/24"],
    );
    sh(&[
        "ip",
        "-n",
        &outside,
        "route",
        "add",
        back,
        "via",
        "198.18.50.1",
    ]);
    (node_ns, outside)
}

#[derive(Clone, Copy, Debug)]
enum Dataplane {
    Nft,
    Ipt,
}

/// The node's dataplane: a driver of either kind kept across cases (so each case is an
/// incremental change), run on a thread inside the node namespace.
struct Node {
    ns: String,
    nft: Option<Driver>,
    ipt: Option<IptDriver>,
}

impl Node {
    fn apply(&mut self, dp: Dataplane, plan: &Plan) {
        let (nft_text, ipt_r) = (nft::render(plan), ipt::render(plan));
        let (mut n, mut i) = (self.nft.take(), self.ipt.take());
        let (n, i) = in_netns(&self.ns, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                match dp {
                    Dataplane::Nft => {
                        IptDriver::remove().await.unwrap();
                        let d = n.get_or_insert_with(Driver::new);
                        d.apply(&nft_text).await.unwrap();
                    }
                    Dataplane::Ipt => {
                        Driver::remove().await.unwrap();
                        let d = i.get_or_insert_with(IptDriver::new);
                        d.apply(&ipt_r).await.unwrap();
                    }
                }
            });
            (n, i)
        })
        .join()
        .expect("the driver's thread");
        self.nft = n;
        self.ipt = i;
    }
}

fn ns_of(name: &str) -> &str {
    name.split('/').next().unwrap_or("")
}

fn pod_of(name: &str) -> &str {
    name.split('/').nth(1).unwrap_or("")
}

/// One case: its policies, the port probed, and what should get through.
struct Case {
    name: &'static str,
    policies: &'static str,
    port: u16,
    want: fn(&str, &str, Proto) -> bool,
}

const DENY_X: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all-ingress, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "no policy: everything flows",
            policies: "",
            port: 80,
            want: |_, _, _| true,
        },
        Case {
            name: "k8s: default deny ingress in x",
            policies: DENY_X,
            port: 80,
            want: |f, t, _| f == "host" || ns_of(t) != "x",
        },
        Case {
            name: "k8s: allow ingress from the same namespace in x",
            policies: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-same-ns, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}]}]
",
            port: 80,
            want: |f, t, _| f == "host" || ns_of(t) != "x" || ns_of(f) == "x",
        },
        Case {
            name: "k8s: x/a takes TCP 80 from namespace y only; x denies the rest",
            policies: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all-ingress, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: 'y'}}}]
      ports: [{protocol: TCP, port: 80}]
",
            port: 80,
            want: |f, t, p| {
                f == "host" || ns_of(t) != "x" || (t == "x/a" && ns_of(f) == "y" && p == Proto::Tcp)
            },
        },
        Case {
            name: "k8s: y may send only UDP to z (egress; the node too is denied)",
            policies: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-udp-to-z, namespace: 'y'}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: 'z'}}}]
      ports: [{protocol: UDP, port: 80}]
",
            port: 80,
            want: |f, t, p| ns_of(f) != "y" || (ns_of(t) == "z" && p == Proto::Udp),
        },
        Case {
            name: "k8s: z/a takes an ipBlock except x/a",
            policies: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: block-except, namespace: z}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{ipBlock: {cidr: 198.19.0.0/24, except: [198.19.0.1/32]}}]}]
",
            port: 80,
            want: |f, t, _| t != "z/a" || f != "x/a",
        },
        Case {
            name: "k8s: named port http (81) on x/b, port range 80-81 on x/a",
            policies: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-http, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{ports: [{protocol: TCP, port: http}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-range, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{protocol: TCP, port: 80, endPort: 81}]}]
",
            port: 81,
            want: |f, t, p| f == "host" || ns_of(t) != "x" || p == Proto::Tcp,
        },
        Case {
            name: "calico: a security tier denies namespace z and passes the rest to x's default deny",
            policies: "
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.no-z}
spec:
  tier: security
  selector: all()
  types: [Ingress]
  ingress:
    - {action: Deny, source: {namespaceSelector: kubernetes.io/metadata.name == 'z'}}
    - {action: Pass}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all-ingress, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
",
            port: 80,
            want: |f, t, _| f == "host" || t == "host" || (ns_of(f) != "z" && ns_of(t) != "x"),
        },
        Case {
            name: "calico: GNP logs ICMP and denies it unless from notNets, allows the rest",
            policies: "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: icmp-guard}
spec:
  order: 1
  selector: all()
  types: [Ingress]
  ingress:
    - {action: Log, protocol: ICMP}
    - {action: Deny, protocol: ICMP, source: {notNets: [198.19.0.0/31, 198.19.0.2/32]}}
    - {action: Allow}
",
            port: 80,
            want: |f, t, p| p != Proto::Icmp || t == "host" || matches!(f, "host" | "x/a" | "x/b"),
        },
        Case {
            name: "calico: b pods take traffic from a pods outside z (selector and notSelector)",
            policies: "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: a-to-b}
spec:
  selector: pod == 'b'
  ingress:
    - action: Allow
      source: {selector: pod == 'a', notSelector: projectcalico.org/namespace == 'z'}
",
            port: 80,
            want: |f, t, _| {
                f == "host" || pod_of(t) != "b" || (pod_of(f) == "a" && ns_of(f) != "z")
            },
        },
        Case {
            name: "calico: x takes traffic from a NetworkSet of its own and a GlobalNetworkSet",
            policies: "
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: from-y, namespace: x, labels: {src: ny}}
spec: {nets: [198.19.0.3/32, 198.19.0.4/32]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: trusted, labels: {role: trusted}}
spec: {nets: [198.19.0.5/32]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: from-sets, namespace: x}
spec:
  selector: all()
  ingress:
    - {action: Allow, source: {selector: src == 'ny'}}
    - {action: Allow, source: {namespaceSelector: global(), selector: role == 'trusted'}}
",
            port: 80,
            want: |f, t, _| f == "host" || ns_of(t) != "x" || ns_of(f) == "y" || f == "z/a",
        },
        Case {
            name: "calico: z takes only service account sa-a; y's web service account takes nothing",
            policies: "
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: ksa.y.sa-a}
spec: {labelsToApply: {pcsa.team: web}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: z-from-sa-a}
spec:
  selector: projectcalico.org/namespace == 'z'
  ingress: [{action: Allow, source: {serviceAccounts: {names: [sa-a]}}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-closed, namespace: 'y'}
spec:
  serviceAccountSelector: team == 'web'
  types: [Ingress]
",
            port: 80,
            want: |f, t, _| f == "host" || (t != "y/a" && (ns_of(t) != "z" || pod_of(f) == "a")),
        },
    ]
}

#[test]
fn reachability_matrices_on_nftables_and_iptables() {
    require(&[
        "ip",
        "ping",
        "nft",
        "iptables-restore",
        "ip6tables-restore",
        "ipset",
    ]);
    let mut lab = Lab::new();
    let node_ns = lab.ns("node");
    lab.forwarding(&node_ns);
    sh(&[
        "ip",
        "-n",
        &node_ns,
        "addr",
        "add",
        &format!("{HOST_IP}/32"),
        "dev",
        "lo",
    ]);
    let mut hosts = vec![Host {
        name: "host".into(),
        ns: node_ns.clone(),
        ip: HOST_IP.parse::<IpAddr>().unwrap(),
    }];
    for (ns, pod, ip) in PODS {
        let pns = lab.wired_pod(
            &node_ns,
            &format!("{ns}{pod}"),
            &format!("cali{ns}{pod}"),
            ip,
        );
        hosts.push(Host {
            name: format!("{ns}/{pod}"),
            ns: pns,
            ip: ip.parse().unwrap(),
        });
    }
    let all_ns: Vec<String> = hosts.iter().map(|h| h.ns.clone()).collect();
    let _servers = Servers::start(&all_ns, &[80, 81]);
    let mut node = Node {
        ns: node_ns.clone(),
        nft: None,
        ipt: None,
    };
    let mut failures = Vec::new();
    for dp in [Dataplane::Nft, Dataplane::Ipt] {
        for case in cases() {
            node.apply(dp, &plan_of(case.policies));
            let want = expected(&hosts, case.want);
            let got = matrix(&hosts, case.port);
            let report = table(&hosts, &got, Some(&want));
            eprintln!("{dp:?} — {}:\n{report}", case.name);
            if got != want {
                failures.push(format!("{dp:?} — {}:\n{report}", case.name));
            }
        }
    }
    // Both dataplanes cleaned up after themselves when the other took over, and nothing
    // reached the root namespace.
    let tables = sh(&["ip", "netns", "exec", &node_ns, "nft", "list", "tables"]);
    assert!(!tables.contains("inet brindle"), "{tables}");
    let (_, root) = try_sh(&["nft", "list", "tables"]);
    assert!(!root.contains("brindle"), "{root}");
    assert!(
        failures.is_empty(),
        "{} of {} matrices differ (* marks the cells):\n{}",
        failures.len(),
        2 * cases().len(),
        failures.join("\n")
    );
}

/// NAT outgoing on both dataplanes: a pod of a `natOutgoing` pool reaches a host outside the
/// pools with the node's address; a pod of a pool without it keeps its own; traffic between
/// pools is never masqueraded. The "outside" host is a namespace linked to the node.
#[test]
fn nat_outgoing_on_nftables_and_iptables() {
    require(&[
        "ip",
        "nft",
        "iptables-restore",
        "ip6tables-restore",
        "ipset",
    ]);
    let mut lab = Lab::new();
    // The outside host can answer the un-NATed pool directly (a route back), never the
    // NATed one: its replies reach that pod only through the node's masquerade.
    let (node_ns, outside) = node_and_outside(&mut lab, "198.19.1.0/24");
    let nat_pod = lab.wired_pod(&node_ns, "natpod", "calinat", "198.19.0.1");
    let plain_pod = lab.wired_pod(&node_ns, "plainpod", "caliplain", "198.19.1.1");
    let _servers = Servers::start(&[outside.clone(), plain_pod.clone()], &[80]);
    let text = "
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: nat}
spec: {cidr: 198.19.0.0/24, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: plain}
spec: {cidr: 198.19.1.0/24}
---
apiVersion: brindle.dev/v1
kind: WorkloadEndpoint
metadata: {name: node--1-k8s-natpod-eth0, namespace: default}
spec: {orchestrator: k8s, node: node-1, pod: natpod, endpoint: eth0, interfaceName: calinat, ipNetworks: [198.19.0.1/32], profiles: [kns.default]}
---
apiVersion: brindle.dev/v1
kind: WorkloadEndpoint
metadata: {name: node--1-k8s-plainpod-eth0, namespace: default}
spec: {orchestrator: k8s, node: node-1, pod: plainpod, endpoint: eth0, interfaceName: caliplain, ipNetworks: [198.19.1.1/32], profiles: [kns.default]}
";
    let plan = plan_text(text);
    assert_eq!(plan.nat.masquerade.len(), 1);
    let mut node = Node {
        ns: node_ns.clone(),
        nft: None,
        ipt: None,
    };
    let seen = |from: &str, to: &str| {
        brindle_tests::probe::seen_source(from, to.parse().unwrap(), 80).map(|a| a.to_string())
    };
    for dp in [Dataplane::Nft, Dataplane::Ipt] {
        node.apply(dp, &plan);
        assert_eq!(
            seen(&nat_pod, "198.18.50.2").as_deref(),
            Some("198.18.50.1"),
            "{dp:?}: the natOutgoing pool leaves with the node's address"
        );
        assert_eq!(
            seen(&plain_pod, "198.18.50.2").as_deref(),
            Some("198.19.1.1"),
            "{dp:?}: a pool without natOutgoing keeps its address"
        );
        assert_eq!(
            seen(&nat_pod, "198.19.1.1").as_deref(),
            Some("198.19.0.1"),
            "{dp:?}: no NAT between pools"
        );
    }
    // With no natOutgoing pool left, nothing is masqueraded (the NATed pod cannot get an
    // answer from outside any more).
    let mut plain = plan.clone();
    plain.nat.masquerade.clear();
    node.apply(Dataplane::Ipt, &plain);
    assert_eq!(seen(&nat_pod, "198.18.50.2"), None, "iptables: NAT removed");
    node.apply(Dataplane::Nft, &plain);
    assert_eq!(seen(&nat_pod, "198.18.50.2"), None, "nftables: NAT removed");
    let nat = sh(&[
        "ip",
        "netns",
        "exec",
        &node_ns,
        "iptables-save",
        "-t",
        "nat",
    ]);
    assert!(
        !nat.contains("brindle"),
        "switching to nftables left: {nat}"
    );
}

/// Host endpoints on both dataplanes: the node's uplink `eth1` (to an "outside" host) under a
/// HostEndpoint, one pod behind the node. For each case, TCP, UDP and ICMP between the node,
/// the outside host and the pod: default deny with failsafe ports, normal policy,
/// applyOnForward, preDNAT and doNotTrack.
#[test]
fn host_endpoints_on_nftables_and_iptables() {
    require(&[
        "ip",
        "ping",
        "nft",
        "iptables-restore",
        "ip6tables-restore",
        "ipset",
    ]);
    let mut lab = Lab::new();
    let (node_ns, outside) = node_and_outside(&mut lab, "198.19.0.0/24");
    let pod = lab.wired_pod(&node_ns, "pod", "calipod", "198.19.0.1");
    let _servers = Servers::start(&[node_ns.clone(), outside.clone(), pod.clone()], &[80, 22]);
    let hosts = vec![
        Host {
            name: "node".into(),
            ns: node_ns.clone(),
            ip: "198.18.50.1".parse().unwrap(),
        },
        Host {
            name: "outside".into(),
            ns: outside.clone(),
            ip: "198.18.50.2".parse().unwrap(),
        },
        Host {
            name: "pod".into(),
            ns: pod.clone(),
            ip: "198.19.0.1".parse().unwrap(),
        },
    ];
    let base = "
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node-1-eth1, labels: {role: edge}}
spec: {node: node-1, interfaceName: eth1, expectedIPs: [198.18.50.1]}
---
apiVersion: brindle.dev/v1
kind: WorkloadEndpoint
metadata: {name: node--1-k8s-pod-eth0, namespace: default}
spec: {orchestrator: k8s, node: node-1, pod: pod, endpoint: eth0, interfaceName: calipod, ipNetworks: [198.19.0.1/32], profiles: [kns.default]}
";
    type Want = fn(&str, &str, Proto) -> bool;
    let cases: Vec<(&str, &str, Want)> = vec![
        (
            "a host endpoint without policy: the host is closed, forwarding is not policed",
            "",
            |f, t, _| !matches!((f, t), ("outside", "node") | ("node", "outside")),
        ),
        (
            "normal policy: TCP 80 in, anything out",
            "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: edge}
spec:
  selector: role == 'edge'
  types: [Ingress, Egress]
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
  egress: [{action: Allow}]
",
            |f, t, p| !(f == "outside" && t == "node") || p == Proto::Tcp,
        ),
        (
            "applyOnForward: nothing forwarded in to the pods; the host takes all, sends nothing",
            "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: edge}
spec:
  selector: role == 'edge'
  applyOnForward: true
  types: [Ingress]
  ingress:
    - {action: Deny, destination: {nets: [198.19.0.0/24]}}
    - {action: Allow}
",
            |f, t, _| !matches!((f, t), ("outside", "pod") | ("node", "outside")),
        ),
        (
            "preDNAT: new TCP from outside dropped before DNAT, whatever normal policy says",
            "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: no-tcp-in}
spec:
  selector: role == 'edge'
  preDNAT: true
  applyOnForward: true
  types: [Ingress]
  ingress: [{action: Deny, protocol: TCP}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: edge}
spec:
  selector: role == 'edge'
  types: [Ingress, Egress]
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
",
            |f, _, p| f != "outside" || p != Proto::Tcp,
        ),
        (
            "doNotTrack: UDP 80 both ways untracked; nothing else reaches or leaves the host",
            "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: udp-untracked}
spec:
  selector: role == 'edge'
  doNotTrack: true
  applyOnForward: true
  types: [Ingress, Egress]
  ingress:
    - {action: Allow, protocol: UDP, destination: {ports: [80]}}
    - {action: Allow, protocol: UDP, source: {ports: [80]}}
  egress:
    - {action: Allow, protocol: UDP, source: {ports: [80]}}
    - {action: Allow, protocol: UDP, destination: {ports: [80]}}
",
            |f, t, p| {
                !matches!((f, t), ("outside", "node") | ("node", "outside")) || p == Proto::Udp
            },
        ),
    ];
    let mut node = Node {
        ns: node_ns.clone(),
        nft: None,
        ipt: None,
    };
    let mut failures = Vec::new();
    for (dp, (i, (name, policies, want))) in [Dataplane::Nft, Dataplane::Ipt]
        .into_iter()
        .flat_map(|dp| cases.iter().enumerate().map(move |c| (dp, c)))
    {
        let text = format!("{base}---\n{policies}");
        let plan = plan_text(&text);
        node.apply(dp, &plan);
        let want = expected(&hosts, *want);
        let got = matrix(&hosts, 80);
        let report = table(&hosts, &got, Some(&want));
        eprintln!("{dp:?} — {name}:\n{report}");
        if got != want {
            failures.push(format!("{dp:?} — {name}:\n{report}"));
        }
        if i == 0 {
            // The failsafe ports stay open: SSH to the host from outside.
            assert!(
                brindle_tests::probe::probe(
                    &outside,
                    "198.18.50.1".parse().unwrap(),
                    22,
                    Proto::Tcp
                ),
                "{dp:?}: failsafe TCP 22 blocked"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} matrices differ (* marks the cells):\n{}",
        failures.len(),
        2 * cases.len(),
        failures.join("\n")
    );
}
