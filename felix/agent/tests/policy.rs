//! The policy calculation's semantics, the renderer's golden output, and the rendered table
//! enforced by the kernel in network namespaces (pods pinging and connecting through a node).

use std::path::Path;

use brindle_crds::Resource;
use brindle_crds::document::parse_resources;
use brindle_felix::calc::{Plan, calculate, inputs_from};
use brindle_felix::nft::render;

fn load(name: &str) -> Vec<Resource> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.yaml"));
    parse_resources(&std::fs::read_to_string(p).unwrap())
        .unwrap()
        .into_iter()
        .map(|d| d.result.unwrap_or_else(|e| panic!("{}: {e:?}", d.label)))
        .collect()
}

fn plan(rs: &[Resource], node: &str) -> Plan {
    calculate(&inputs_from(rs), node)
}

#[test]
fn tiers_policies_and_profiles_in_calico_order() {
    let p = plan(&load("demo"), "node-1");
    let db = &p.endpoints["calidb"];
    // Ingress: the security tier (order 100) first, then default (1,000,000).
    let tiers: Vec<&str> = db.ingress.iter().map(|t| t.tier.as_str()).collect();
    assert_eq!(tiers, ["security", "default"]);
    // In the default tier: the namespaced policy (order 100) before the default deny (1000).
    assert_eq!(
        db.ingress[1].policies,
        ["default/demo/web-to-db", "default/default-deny-demo"]
    );
    // Egress: only the security tier (default-deny-demo is Ingress only; web-to-db has no
    // egress rules so its inferred types are Ingress only).
    assert_eq!(db.egress.len(), 1);
    // A pod in another namespace: no policy applies (the namespaced policy is scoped).
    let other = &p.endpoints["caliother"];
    assert!(other.ingress.is_empty() && other.egress.is_empty());
    assert_eq!(other.profiles, ["kns.other"]);
    // Only node-1's endpoints.
    assert!(!p.endpoints.contains_key("caliweb2"));
    // The web selector in namespace demo picks both web pods (both nodes), not the other ns.
    let rule = &p.policies["default/demo/web-to-db"].ingress[0];
    let set = &p.sets[&rule.src.sets[0]];
    let ips: Vec<String> = set.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["198.19.0.1/32", "198.19.1.1/32"]);
    // The named port resolves against the db endpoint.
    assert_eq!(rule.dst.ports, [(5432, 5432), (8000, 8010)]);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn rendered_table_matches_the_golden_file() {
    let text = render(&plan(&load("demo"), "node-1")).text();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/demo.nft");
    if std::env::var_os("BRINDLE_REGEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(text, want, "BRINDLE_REGEN=1 rewrites {}", path.display());
    // Same input, same output (names and order are stable).
    assert_eq!(text, render(&plan(&load("demo"), "node-1")).text());
}

/// The demo table enforced by the kernel: pods wired into a node namespace as the CNI plugin
/// wires them, the rendered table applied with nft, then what passes and what does not.
#[test]
fn the_kernel_enforces_the_rendered_table() {
    use brindle_tests::netns::*;
    require(&["ip", "ping", "nft", "nc"]);
    let mut lab = Lab::new();
    let node = lab.ns("node");
    sh(&[
        "ip",
        "netns",
        "exec",
        &node,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);
    let mut pods = Vec::new();
    for (name, ip) in [
        ("web", "198.19.0.1"),
        ("db", "198.19.0.2"),
        ("other", "198.19.0.3"),
    ] {
        pods.push(lab.wired_pod(&node, name, &format!("cali{name}"), ip));
    }
    let (web, db, other) = (&pods[0], &pods[1], &pods[2]);
    let ping = |from: &str, to: &str| {
        try_sh(&[
            "ip", "netns", "exec", from, "ping", "-c", "1", "-W", "1", to,
        ])
        .0
    };
    assert!(
        ping(web, "198.19.0.2"),
        "before any policy everything flows"
    );
    let table = lab.path("brindle.nft");
    std::fs::write(&table, render(&plan(&load("demo"), "node-1")).text()).unwrap();
    sh(&[
        "ip",
        "netns",
        "exec",
        &node,
        "nft",
        "-f",
        table.to_str().unwrap(),
    ]);
    // db listens on 5432 (its named port pg) and on 9999 (not allowed).
    for port in ["5432", "9999"] {
        lab.spawn(db, &format!("nc-{port}"), &["nc", "-lk", "-p", port]);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tcp = |from: &str, port: &str| {
        try_sh(&[
            "ip",
            "netns",
            "exec",
            from,
            "nc",
            "-z",
            "-w",
            "2",
            "198.19.0.2",
            port,
        ])
        .0
    };
    assert!(tcp(web, "5432"), "web → db:pg is allowed");
    assert!(!tcp(web, "9999"), "web → db:9999 is not");
    assert!(
        !tcp(other, "5432"),
        "the web selector is scoped to namespace demo"
    );
    assert!(
        !ping(web, "198.19.0.2"),
        "ICMP to db is only logged, then denied at the end of the tier"
    );
    assert!(
        !ping(other, "198.19.0.1"),
        "default deny for ingress in demo"
    );
    assert!(
        ping(web, "198.19.0.3"),
        "other has no policy: its namespace profile allows"
    );
    // A workload interface the plan does not know is dropped (fail closed).
    let ghost = lab.ns("ghost");
    lab.link(&node, "caliGhost", &[], &ghost, "eth0", &["198.19.0.9/32"]);
    sh(&["ip", "-n", &ghost, "route", "add", "default", "dev", "eth0"]);
    sh(&[
        "ip",
        "-n",
        &node,
        "route",
        "add",
        "198.19.0.9/32",
        "dev",
        "caliGhost",
    ]);
    assert!(!ping(web, "198.19.0.9"));
    // Counters moved on the allowing rule.
    let list = sh(&[
        "ip", "netns", "exec", &node, "nft", "list", "table", "inet", "brindle",
    ]);
    let line = list
        .lines()
        .find(|l| l.contains("web-to-db ingress[0]") && l.contains("ip saddr"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(!line.contains("packets 0 "), "{line}");
}

/// The nftables driver against the kernel, in a namespace of its own: it writes only when the
/// table should change; a rule inserted into our table by hand (before or after the driver
/// read its write back) is removed and a deleted table re-created at the next pass; after a
/// restart with unchanged state nothing is written; a change is written incrementally and
/// leaves the kernel with exactly what a full write of the new table gives.
#[test]
fn the_driver_repairs_foreign_changes_and_restarts_quietly() {
    use brindle_felix::driver::Driver;
    use brindle_tests::netns::*;
    require(&["nft"]);
    let mut lab = Lab::new();
    let node = lab.ns("node");
    let fresh = lab.ns("fresh");
    let demo = plan(&load("demo"), "node-1");
    let full = render(&demo);
    let mut smaller = demo.clone();
    smaller.policies.clear();
    for ep in smaller.endpoints.values_mut() {
        ep.ingress.clear();
        ep.egress.clear();
    }
    smaller.endpoints.remove("caliother");
    let small = render(&smaller);
    let chain = full.chains[0].0.clone();
    // The kernel's listing without counters and handles.
    let list = |ns: &str| {
        let t = sh(&[
            "ip", "netns", "exec", ns, "nft", "list", "table", "inet", "brindle",
        ]);
        t.lines()
            .map(|l| match l.find("counter packets") {
                Some(i) => format!(
                    "{}counter{}",
                    &l[..i],
                    l[i..]
                        .splitn(6, ' ')
                        .nth(5)
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default()
                ),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let n2 = node.clone();
    let (f2, s2) = (full.clone(), small.clone());
    let wrote: Vec<bool> = in_netns(&node, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let by_hand = |chain: &str| {
            sh(&[
                "ip",
                "netns",
                "exec",
                &n2,
                "nft",
                "add",
                "rule",
                "inet",
                "brindle",
                chain,
                "counter",
                "accept",
                "comment",
                "\"by hand\"",
            ]);
        };
        rt.block_on(async {
            let mut d = Driver::new();
            let mut wrote = vec![d.apply(&f2).await.unwrap(), d.apply(&f2).await.unwrap()];
            // A foreign rule inside our table: removed at the next pass.
            by_hand(&chain);
            wrote.push(d.apply(&f2).await.unwrap());
            // Our table deleted: re-created.
            sh(&[
                "ip", "netns", "exec", &n2, "nft", "delete", "table", "inet", "brindle",
            ]);
            wrote.push(d.apply(&f2).await.unwrap());
            // A foreign rule right after a write, before the driver read it back.
            by_hand(&chain);
            wrote.push(d.apply(&f2).await.unwrap());
            // A restart (a new driver) with the same state writes nothing.
            wrote.push(Driver::new().apply(&f2).await.unwrap());
            // A change, written incrementally, then nothing more to do.
            wrote.push(d.apply(&s2).await.unwrap());
            wrote.push(d.apply(&s2).await.unwrap());
            wrote
        })
    })
    .join()
    .expect("the driver's thread");
    assert_eq!(
        wrote,
        [true, false, true, true, true, false, true, false],
        "writes per pass"
    );
    let table = list(&node);
    assert!(
        !table.contains("by hand"),
        "the foreign rule survived:\n{table}"
    );
    // The incremental result equals a full write of the smaller table.
    let s3 = small.clone();
    in_netns(&fresh, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(Driver::new().apply(&s3)).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(table, list(&fresh), "incremental and full writes differ");
    // Nothing of ours leaked into the root namespace.
    let (_, root) = try_sh(&["nft", "list", "tables"]);
    assert!(
        !root.contains("brindle"),
        "a table in the root namespace: {root}"
    );
}

#[test]
fn iptables_rendering_matches_the_golden_file() {
    let text = brindle_felix::ipt::render(&plan(&load("demo"), "node-1")).text();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/demo.iptables");
    if std::env::var_os("BRINDLE_REGEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(text, want, "BRINDLE_REGEN=1 rewrites {}", path.display());
    // Every chain name fits iptables' 28 characters, every ipset name ipset's 31.
    for l in text.lines() {
        if let Some(c) = l.strip_prefix(':') {
            let name = c.split(' ').next().unwrap();
            assert!(name.len() <= 28, "{name}");
        }
        if let Some(c) = l.strip_prefix("create ") {
            let name = c.split(' ').next().unwrap();
            assert!(name.len() <= 31, "{name}");
        }
    }
}

/// The iptables driver against the kernel, in a namespace of its own: writes only on change;
/// a rule added to one of our chains by hand, a deleted chain's contents, a deleted jump and a
/// deleted ipset are all put back; a chain of ours no longer wanted is removed; after a restart
/// with unchanged state nothing is written; `remove` leaves nothing of ours.
#[test]
fn the_iptables_driver_repairs_foreign_changes_and_restarts_quietly() {
    use brindle_felix::ipt::render as ipt_render;
    use brindle_felix::ipt_driver::IptDriver;
    use brindle_tests::netns::*;
    require(&["iptables-restore", "ip6tables-restore", "ipset"]);
    let mut lab = Lab::new();
    let node = lab.ns("node");
    let demo = plan(&load("demo"), "node-1");
    let full = ipt_render(&demo);
    // The same plan without its policies: fewer chains (the policy chains become stale).
    let mut smaller = demo.clone();
    smaller.policies.clear();
    for ep in smaller.endpoints.values_mut() {
        ep.ingress.clear();
        ep.egress.clear();
    }
    let small = ipt_render(&smaller);
    let set = full.sets.keys().next().expect("an ipset").clone();
    let chain = full.tables[0]["filter"]
        .keys()
        .find(|c| c.contains("-pi-"))
        .unwrap()
        .clone();
    let (n2, f2, s2) = (node.clone(), full.clone(), small.clone());
    let wrote: Vec<bool> = in_netns(&node, move || {
        let x = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &n2];
            v.extend_from_slice(args);
            sh(&v);
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut d = IptDriver::new();
            let mut w = vec![d.apply(&f2).await.unwrap(), d.apply(&f2).await.unwrap()];
            x(&["iptables", "-A", &chain, "-j", "ACCEPT"]);
            w.push(d.apply(&f2).await.unwrap());
            x(&["iptables", "-D", "FORWARD", "1"]);
            w.push(d.apply(&f2).await.unwrap());
            x(&["iptables", "-F", &chain]);
            w.push(d.apply(&f2).await.unwrap());
            x(&["ipset", "flush", &set]);
            w.push(d.apply(&f2).await.unwrap());
            w.push(IptDriver::new().apply(&f2).await.unwrap());
            w.push(d.apply(&s2).await.unwrap());
            w.push(d.apply(&s2).await.unwrap());
            w
        })
    })
    .join()
    .expect("the driver's thread");
    assert_eq!(
        wrote,
        [true, false, true, true, true, true, false, true, false],
        "writes per pass"
    );
    let save = sh(&[
        "ip",
        "netns",
        "exec",
        &node,
        "iptables-save",
        "-t",
        "filter",
    ]);
    let ours: Vec<&str> = save
        .lines()
        .filter(|l| l.starts_with(":brindle-"))
        .map(|l| l.trim_start_matches(':').split(' ').next().unwrap())
        .collect();
    let want: Vec<&str> = small.tables[0]["filter"]
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(ours, want, "exactly the smaller plan's chains:\n{save}");
    assert_eq!(
        save.matches("-j brindle-FORWARD").count(),
        1,
        "one jump from FORWARD:\n{save}"
    );
    in_netns(&node, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(IptDriver::remove()).unwrap();
    })
    .join()
    .unwrap();
    let save = sh(&["ip", "netns", "exec", &node, "iptables-save"]);
    assert!(!save.contains("brindle"), "{save}");
    let save6 = sh(&["ip", "netns", "exec", &node, "ip6tables-save"]);
    assert!(!save6.contains("brindle"), "{save6}");
    let sets = sh(&["ip", "netns", "exec", &node, "ipset", "list", "-n"]);
    assert!(!sets.contains("brindle"), "{sets}");
}

/// A host endpoint named by address only applies to the node's interface holding one of its
/// `expectedIPs`; with no such interface it applies nowhere, and the plan says why.
#[test]
fn host_endpoint_by_expected_ip_finds_its_interface() {
    let text = "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: node-1-uplink, labels: {role: edge}}\nspec: {node: node-1, expectedIPs: [198.18.50.1]}\n";
    let rs: Vec<Resource> = parse_resources(text)
        .unwrap()
        .into_iter()
        .map(|d| d.result.unwrap())
        .collect();
    let mut inputs = inputs_from(&rs);
    inputs.interfaces = vec![
        ("lo".into(), vec!["127.0.0.1".parse().unwrap()]),
        ("eth1".into(), vec!["198.18.50.1".parse().unwrap()]),
    ];
    let p = calculate(&inputs, "node-1");
    assert_eq!(p.hosts.keys().collect::<Vec<_>>(), ["eth1"]);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    inputs.interfaces.pop();
    let p = calculate(&inputs, "node-1");
    assert!(p.hosts.is_empty());
    assert!(
        p.notes.iter().any(|n| n.contains("applies nowhere")),
        "{:?}",
        p.notes
    );
}
