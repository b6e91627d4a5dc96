//! brindle-cni end to end, as a container runtime calls it: a node namespace, pod namespaces
//! made by the test, the real binary with stdin and `CNI_*` variables, a sqlite datastore.
//! Checks what the kernel and the datastore hold after each call, and that failed ADDs leave
//! nothing behind. Needs root, iproute2 and ping. Pods in 198.19.0.0/16.

use brindle_tests::netns::*;
use serde_json::{Value, json};

/// Runs a future to completion on a fresh current-thread runtime (datastore reads and writes
/// from these synchronous tests).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

struct Node {
    lab: Lab,
    host: String,
    db: String,
}

impl Node {
    fn new(pool: &str, block: u8) -> Node {
        require(&["ip", "ping"]);
        let mut lab = Lab::new();
        let host = lab.ns("node");
        let db = format!("sqlite:{}", lab.path("brindle.db").display());
        let n = Node { lab, host, db };
        if !pool.is_empty() {
            n.apply(
                &json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                "metadata": {"name": "pods"}, "spec": {"cidr": pool, "blockSize": block}}),
            );
        }
        n
    }

    fn apply(&self, v: &Value) {
        block_on(async {
            let ds = brindle_datastore::open(&self.db).await.unwrap();
            let r = brindle_crds::document::resource_from_value(v.clone()).unwrap();
            ds.apply(&r).await.unwrap();
        });
    }

    fn conf(&self, version: &str) -> Value {
        json!({"cniVersion": version, "name": "k8s-pod-network", "type": "brindle-cni",
            "datastore": self.db, "nodename": "node-1", "mtu": 1450,
            "log_file_path": self.lab.path("cni.log").to_str().unwrap(),
            "ipam": {"type": "brindle-ipam"}})
    }

    /// Runs the plugin in the node namespace; returns (exit ok, stdout JSON).
    fn cni(
        &self,
        cmd: &str,
        conf: &Value,
        container: &str,
        netns: Option<&str>,
        args: &str,
    ) -> (bool, Value) {
        self.cni_env(cmd, conf, container, netns, args, &[])
    }

    /// Like `cni`, with more environment (fault injection).
    fn cni_env(
        &self,
        cmd: &str,
        conf: &Value,
        container: &str,
        netns: Option<&str>,
        args: &str,
        env: &[(&str, &str)],
    ) -> (bool, Value) {
        let (ok, text, err) = brindle_tests::cni::Call {
            host_ns: &self.host,
            bin: env!("CARGO_BIN_EXE_brindle-cni"),
            cni_path: "/opt/cni/bin",
            command: cmd,
            container,
            netns,
            args,
            env,
        }
        .run(&conf.to_string());
        let v = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}\n{err}"))
        };
        (ok, v)
    }

    fn links(&self) -> String {
        sh(&["ip", "-n", &self.host, "-o", "link", "show"])
    }

    fn handles(&self) -> Vec<String> {
        block_on(async {
            let ds = brindle_datastore::open(&self.db).await.unwrap();
            ds.list(brindle_crds::Kind::IPAMHandle, None, None)
                .await
                .unwrap()
                .iter()
                .map(|r| r.name().to_string())
                .collect()
        })
    }

    fn endpoints(&self) -> Vec<Value> {
        block_on(async {
            let ds = brindle_datastore::open(&self.db).await.unwrap();
            ds.list(brindle_crds::Kind::WorkloadEndpoint, None, None)
                .await
                .unwrap()
                .iter()
                .map(|r| r.to_value())
                .collect()
        })
    }
}

fn ip_of(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn add_check_del_like_a_runtime() {
    let mut n = Node::new("198.19.0.0/24", 28);
    let p1 = n.lab.ns("pod1");
    let p2 = n.lab.ns("pod2");
    let conf = n.conf("1.1.0");
    let k8s = "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=nginx-1";
    let (ok, r1) = n.cni("ADD", &conf, "c1", Some(&p1), k8s);
    assert!(ok, "{r1}\n{}", n.lab.logs());
    let ip1 = ip_of(&r1);
    let host_if = r1["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert!(host_if.starts_with("cali") && host_if.len() == 15, "{r1}");
    assert_eq!(
        r1["interfaces"][1]["sandbox"],
        format!("/var/run/netns/{p1}")
    );
    assert!(
        r1["ips"][0].get("version").is_none(),
        "1.x results carry no version"
    );
    // The pod: eth0 with the /32, the link-local gateway, MTU from the config.
    let addr = sh(&["ip", "-n", &p1, "addr", "show", "eth0"]);
    assert!(
        addr.contains(&format!("{ip1}/32")) && addr.contains("mtu 1450"),
        "{addr}"
    );
    let routes = sh(&["ip", "-n", &p1, "route"]);
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0")
            && routes.contains("169.254.1.1 dev eth0 scope link"),
        "{routes}"
    );
    // The host: the veth with Calico's MAC, proxy ARP, a /32 route with Brindle's protocol.
    let link = sh(&["ip", "-n", &n.host, "link", "show", &host_if]);
    assert!(link.contains("ee:ee:ee:ee:ee:ee"), "{link}");
    let hr = sh(&["ip", "-n", &n.host, "route", "show", &format!("{ip1}/32")]);
    assert!(
        hr.contains(&host_if) && hr.contains("proto 80") && hr.contains("scope link"),
        "{hr}"
    );
    let arp = sh(&[
        "ip",
        "netns",
        "exec",
        &n.host,
        "cat",
        &format!("/proc/sys/net/ipv4/conf/{host_if}/proxy_arp"),
    ]);
    assert_eq!(arp.trim(), "1");
    // The endpoint, named and labelled as Calico does.
    let weps = n.endpoints();
    assert_eq!(weps.len(), 1);
    assert_eq!(weps[0]["metadata"]["name"], "node--1-k8s-nginx--1-eth0");
    assert_eq!(weps[0]["metadata"]["namespace"], "web");
    assert_eq!(
        weps[0]["metadata"]["labels"]["projectcalico.org/namespace"],
        "web"
    );
    assert_eq!(weps[0]["spec"]["ipNetworks"][0], format!("{ip1}/32"));
    assert_eq!(weps[0]["spec"]["interfaceName"], host_if.as_str());

    // A repeated ADD returns the same result and allocates nothing.
    let (ok, again) = n.cni("ADD", &conf, "c1", Some(&p1), k8s);
    assert!(ok, "{again}");
    assert_eq!(ip_of(&again), ip1);
    assert_eq!(n.handles().len(), 1);

    // A second pod on the node (old result format); the two reach each other through the host.
    let (ok, r2) = n.cni("ADD", &n.conf("0.3.1"), "c2", Some(&p2), "");
    assert!(ok, "{r2}");
    assert_eq!(r2["ips"][0]["version"], "4");
    let ip2 = ip_of(&r2);
    let (pinged, out) = try_sh(&[
        "ip", "netns", "exec", &p1, "ping", "-c", "1", "-W", "2", &ip2,
    ]);
    assert!(pinged, "{out}");

    // CHECK passes, then names what is wrong.
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r1.clone();
    let (ok, out) = n.cni("CHECK", &with_prev, "c1", Some(&p1), k8s);
    assert!(ok, "{out}");
    sh(&["ip", "-n", &n.host, "route", "del", &format!("{ip1}/32")]);
    let (ok, out) = n.cni("CHECK", &with_prev, "c1", Some(&p1), k8s);
    assert!(!ok);
    assert_eq!(out["code"], 102, "{out}");
    assert!(
        out["details"]
            .as_str()
            .unwrap()
            .contains(&format!("host route for {ip1} is missing")),
        "{out}"
    );

    // A late DEL of an older sandbox of the same pod leaves the current one alone.
    let (ok, out) = n.cni("DEL", &conf, "c0-old", None, k8s);
    assert!(ok, "{out}");
    assert!(
        n.links().contains(&host_if),
        "the new sandbox's veth was deleted"
    );
    assert_eq!(n.endpoints().len(), 2);
    assert_eq!(n.handles().len(), 2);

    // DEL removes everything; again, and for a container never added, it still succeeds.
    let (ok, out) = n.cni("DEL", &conf, "c1", Some(&p1), k8s);
    assert!(ok, "{out}");
    assert!(!n.links().contains(&host_if));
    assert_eq!(n.handles().len(), 1, "only c2's handle is left");
    assert_eq!(n.endpoints().len(), 1);
    assert!(n.cni("DEL", &conf, "c1", Some(&p1), k8s).0);
    assert!(n.cni("DEL", &conf, "never-added", None, "").0);

    // GC: c2 is not among the valid attachments, so its address and endpoint go.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    // Within the grace period nothing goes (an ADD may still be running).
    let (ok, out) = n.cni("GC", &gc, "", None, "");
    assert!(ok, "{out}");
    assert_eq!(n.handles().len(), 1);
    gc["gc_grace_seconds"] = json!(0);
    // A malformed list is refused rather than read as "nothing is valid".
    let mut bad = gc.clone();
    bad["cni.dev/valid-attachments"] = json!([{"ifname": "eth0"}]);
    let (ok, out) = n.cni("GC", &bad, "", None, "");
    assert!(!ok);
    assert_eq!(out["code"], 7, "{out}");
    assert_eq!(n.handles().len(), 1);
    let (ok, out) = n.cni("GC", &gc, "", None, "");
    assert!(ok, "{out}");
    assert!(n.handles().is_empty(), "{:?}", n.handles());
    assert!(n.endpoints().is_empty());
}

#[test]
fn failed_add_leaves_nothing_behind() {
    // A /30 pool of one /30 block: one address for the first pod... the rest fail.
    let mut n = Node::new("198.19.9.0/30", 30);
    let conf = n.conf("1.0.0");
    let mut taken = 0;
    for i in 0..6 {
        let p = n.lab.ns(&format!("p{i}"));
        let (ok, out) = n.cni("ADD", &conf, &format!("c{i}"), Some(&p), "");
        if ok {
            taken += 1;
            continue;
        }
        assert_eq!(out["code"], 100, "{out}");
        assert!(
            out["details"].as_str().unwrap().contains("exhausted"),
            "{out}"
        );
        let links = n.links();
        assert_eq!(
            links.matches("cali").count(),
            taken,
            "a failed ADD left a veth: {links}"
        );
        assert_eq!(n.handles().len(), taken);
    }
    assert_eq!(taken, 4);

    // Wiring fails (the pod already has an eth0): the address is given back, the veth removed.
    let mut n = Node::new("198.19.10.0/24", 28);
    let p = n.lab.ns("busy");
    sh(&["ip", "-n", &p, "link", "add", "eth0", "type", "bridge"]);
    let (ok, out) = n.cni("ADD", &n.conf("1.0.0"), "busy", Some(&p), "");
    assert!(!ok);
    assert_eq!(out["code"], 101, "{out}");
    assert_eq!(n.links().matches("cali").count(), 0, "{}", n.links());
    assert!(n.handles().is_empty(), "{:?}", n.handles());
    assert!(n.endpoints().is_empty());

    // A namespace that does not exist: code 3, nothing allocated.
    let (ok, out) = n.cni("ADD", &n.conf("1.0.0"), "ghost", Some("no-such-netns"), "");
    assert!(!ok);
    assert_eq!(out["code"], 3, "{out}");
    assert!(n.handles().is_empty());
}

#[test]
fn version_status_and_errors() {
    let n = Node::new("", 0);
    let conf = n.conf("1.1.0");
    let (ok, v) = n.cni("VERSION", &conf, "", None, "");
    assert!(ok);
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    // No pool yet: STATUS says ADD cannot be served.
    let (ok, s) = n.cni("STATUS", &conf, "", None, "");
    assert!(!ok);
    assert_eq!(s["code"], 50, "{s}");
    n.apply(
        &json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "pods"}, "spec": {"cidr": "198.19.20.0/24"}}),
    );
    assert!(n.cni("STATUS", &conf, "", None, "").0);
    // Missing CNI_NETNS on ADD names the variable.
    let (ok, e) = n.cni("ADD", &conf, "c1", None, "");
    assert!(!ok);
    assert_eq!(e["code"], 4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_NETNS"), "{e}");
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.1.0");
    assert_eq!(n.cni("ADD", &old, "c1", None, "").1["code"], 1);
}

/// The result's `ips` for one cniVersion: 0.3.x and 0.4.0 carry `version`, 1.x does not.
fn check_format(version: &str, r: &Value) {
    assert_eq!(r["cniVersion"], version, "{r}");
    let has_version = r["ips"][0].get("version").is_some();
    assert_eq!(has_version, version.starts_with("0."), "{version}: {r}");
}

/// Every supported version, as a runtime of that version drives it: ADD (in that version's
/// result format), CHECK where the version has it (0.4.0 on), DEL; nothing left afterwards.
#[test]
fn every_supported_version() {
    let mut n = Node::new("198.19.30.0/24", 28);
    for (i, v) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        .iter()
        .enumerate()
    {
        let p = n.lab.ns(&format!("v{i}"));
        let conf = n.conf(v);
        let c = format!("ver-{i}");
        let (ok, r) = n.cni("ADD", &conf, &c, Some(&p), "");
        assert!(ok, "{v}: {r}");
        check_format(v, &r);
        let ip = ip_of(&r);
        let addr = sh(&["ip", "-n", &p, "addr", "show", "eth0"]);
        assert!(addr.contains(&format!("{ip}/32")), "{v}: {addr}");
        let mut with_prev = conf.clone();
        with_prev["prevResult"] = r.clone();
        let (ok, out) = n.cni("CHECK", &with_prev, &c, Some(&p), "");
        if v.starts_with("0.3") {
            // CHECK arrived in 0.4.0: an older runtime never sends it; refused as incompatible.
            assert!(!ok, "{v}: {out}");
            assert_eq!(out["code"], 1, "{v}: {out}");
        } else {
            assert!(ok, "{v}: {out}");
        }
        let (ok, out) = n.cni("DEL", &conf, &c, Some(&p), "");
        assert!(ok, "{v}: {out}");
    }
    assert!(n.handles().is_empty(), "{:?}", n.handles());
    assert!(n.endpoints().is_empty());
    assert_eq!(n.links().matches("cali").count(), 0, "{}", n.links());
}

/// CHECK names every kind of damage: the host route, the host veth, the pod's address, the
/// pod's default route, the IPAM allocation and the endpoint; each repaired by a new ADD.
#[test]
fn check_catches_every_fault() {
    let mut n = Node::new("198.19.31.0/24", 28);
    let p = n.lab.ns("pod");
    let conf = n.conf("1.1.0");
    let k8s = "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=api-1";
    let (ok, r) = n.cni("ADD", &conf, "c1", Some(&p), k8s);
    assert!(ok, "{r}");
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r.clone();
    let host = n.host.clone();
    let db = n.db.clone();
    // Each fault gets the pod's current address and host interface.
    type Fault<'a> = (&'a str, Box<dyn Fn(&str, &str) + 'a>);
    let faults: Vec<Fault> = vec![
        (
            "host route",
            Box::new(|ip, _| {
                sh(&["ip", "-n", &host, "route", "del", &format!("{ip}/32")]);
            }),
        ),
        (
            "pod address",
            Box::new(|ip, _| {
                sh(&[
                    "ip",
                    "-n",
                    &p,
                    "addr",
                    "del",
                    &format!("{ip}/32"),
                    "dev",
                    "eth0",
                ]);
            }),
        ),
        (
            "default route",
            Box::new(|_, _| {
                sh(&["ip", "-n", &p, "route", "del", "default"]);
            }),
        ),
        (
            "veth",
            Box::new(|_, host_if| {
                sh(&["ip", "-n", &host, "link", "del", host_if]);
            }),
        ),
        (
            "IPAM allocation",
            Box::new(|_, _| release_handle(&db, "k8s-pod-network.c1")),
        ),
        ("endpoint", Box::new(|_, _| delete_endpoints(&db))),
    ];
    let mut current = r;
    for (what, damage) in &faults {
        let (ok, out) = n.cni("CHECK", &with_prev, "c1", Some(&p), k8s);
        assert!(ok, "before damaging the {what}: {out}");
        let ip = ip_of(&current);
        let host_if = current["interfaces"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        damage(&ip, &host_if);
        let (ok, out) = n.cni("CHECK", &with_prev, "c1", Some(&p), k8s);
        assert!(!ok, "CHECK passed with a damaged {what}");
        assert_eq!(out["code"], 102, "{what}: {out}");
        eprintln!("{what}: {}", out["details"]);
        // A runtime repairs with DEL + ADD.
        assert!(n.cni("DEL", &conf, "c1", Some(&p), k8s).0);
        let (ok, r2) = n.cni("ADD", &conf, "c1", Some(&p), k8s);
        assert!(ok, "re-ADD after {what}: {r2}");
        with_prev["prevResult"] = r2.clone();
        current = r2;
    }
}

fn release_handle(db: &str, handle: &str) {
    block_on(async {
        let ds = brindle_datastore::open(db).await.unwrap();
        brindle_ipam::Ipam::new(ds)
            .release_by_handle(handle)
            .await
            .unwrap();
    });
}

fn delete_endpoints(db: &str) {
    block_on(async {
        let ds = brindle_datastore::open(db).await.unwrap();
        for r in ds
            .list(brindle_crds::Kind::WorkloadEndpoint, None, None)
            .await
            .unwrap()
        {
            ds.delete(&brindle_datastore::Key::of(&r), None)
                .await
                .unwrap();
        }
    });
}

/// Runs `cmd` for every pod at once (container `k<i>` in `pods[i]`); the results in order.
fn all_at_once(n: &Node, conf: &Value, pods: &[String], cmd: &str) -> Vec<(bool, Value)> {
    std::thread::scope(|s| {
        let hs: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| s.spawn(move || n.cni(cmd, conf, &format!("k{i}"), Some(p), "")))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// 100 ADDs at once on one node (as a runtime starting a deployment): 100 distinct addresses,
/// all from the node's own blocks, 100 veths; then 100 DELs at once leave no allocation, no
/// endpoint and no veth.
#[test]
fn hundred_concurrent_adds_and_dels() {
    const N: usize = 100;
    let mut n = Node::new("198.19.64.0/18", 26);
    let pods: Vec<String> = (0..N).map(|i| n.lab.ns(&format!("c{i}"))).collect();
    let conf = n.conf("1.1.0");
    let started = std::time::Instant::now();
    let results: Vec<(bool, Value)> = all_at_once(&n, &conf, &pods, "ADD");
    eprintln!("{N} concurrent ADDs in {:?}", started.elapsed());
    let mut ips = std::collections::BTreeSet::new();
    for (ok, r) in &results {
        assert!(ok, "{r}\n{}", n.lab.logs());
        assert!(ips.insert(ip_of(r)), "{} handed out twice", ip_of(r));
    }
    assert_eq!(ips.len(), N);
    // Every address is in a block affine to this node (no borrowing when blocks are free).
    let blocks = node_blocks(&n.db, "node-1");
    for ip in &ips {
        let a: std::net::IpAddr = ip.parse().unwrap();
        assert!(
            blocks.iter().any(|b| b.contains(a)),
            "{ip} not in {blocks:?}"
        );
    }
    assert_eq!(n.links().matches("cali").count(), N);
    assert_eq!(n.handles().len(), N);
    let started = std::time::Instant::now();
    let dels: Vec<(bool, Value)> = all_at_once(&n, &conf, &pods, "DEL");
    eprintln!("{N} concurrent DELs in {:?}", started.elapsed());
    for (ok, r) in &dels {
        assert!(ok, "{r}");
    }
    assert!(n.handles().is_empty(), "{} handles left", n.handles().len());
    assert!(n.endpoints().is_empty());
    assert_eq!(n.links().matches("cali").count(), 0);
    assert_eq!(allocations(&n.db), 0, "allocations left in the blocks");
}

fn node_blocks(db: &str, node: &str) -> Vec<ipnetwork::IpNetwork> {
    block_on(async {
        let ds = brindle_datastore::open(db).await.unwrap();
        brindle_ipam::Ipam::new(ds).node_blocks(node).await.unwrap()
    })
}

fn allocations(db: &str) -> usize {
    block_on(async {
        let ds = brindle_datastore::open(db).await.unwrap();
        brindle_ipam::Ipam::new(ds)
            .blocks()
            .await
            .unwrap()
            .iter()
            .map(|b| brindle_ipam::block::in_use(&b.spec))
            .sum()
    })
}

/// Runs another CNI plugin (Debian's containernetworking-plugins) in the node namespace.
fn run_plugin(
    n: &Node,
    bin: &str,
    cmd: &str,
    conf: &Value,
    container: &str,
    netns: &str,
) -> (bool, String) {
    let (ok, out, err) = brindle_tests::cni::Call {
        host_ns: &n.host,
        bin,
        cni_path: "/usr/lib/cni",
        command: cmd,
        container,
        netns: Some(netns),
        args: "",
        env: &[],
    }
    .run(&conf.to_string());
    (ok, out + &err)
}

/// Chained as a conflist does it: Brindle first, then Debian's `portmap` with Brindle's result
/// as `prevResult`. A client outside the node reaches the pod's port 80 through the node's
/// port 8080; DEL through the chain (reverse order) removes the mapping and the pod.
#[test]
fn portmap_chained_after_brindle() {
    const PORTMAP: &str = "/usr/lib/cni/portmap";
    require(&["nc", "iptables", PORTMAP]);
    let mut n = Node::new("198.19.32.0/24", 28);
    let pod = n.lab.ns("web");
    let client = n.lab.ns("client");
    let host = n.host.clone();
    n.lab.link(
        &host,
        "up0",
        &["198.18.40.1/24"],
        &client,
        "eth0",
        &["198.18.40.2/24"],
    );
    let conf = n.conf("1.0.0");
    let (ok, r) = n.cni("ADD", &conf, "pm", Some(&pod), "");
    assert!(ok, "{r}");
    let ip = ip_of(&r);
    let pm_conf = |prev: Option<&Value>| {
        let mut c = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}});
        if let Some(p) = prev {
            c["prevResult"] = p.clone();
        }
        c
    };
    let (ok, out) = run_plugin(&n, PORTMAP, "ADD", &pm_conf(Some(&r)), "pm", &pod);
    assert!(ok, "portmap ADD: {out}");
    let rules = sh(&["ip", "netns", "exec", &n.host, "iptables-save", "-t", "nat"]);
    assert!(
        rules.contains(&format!("{ip}:80")),
        "no DNAT to the pod: {rules}"
    );
    // The pod serves one line on port 80; the client asks the node's port 8080.
    let server = n.lab.spawn(
        &pod,
        "nc-server",
        &[
            "sh",
            "-c",
            "echo hello-from-pod | nc -l -p 80 -q 1 || echo hello-from-pod | nc -l 80",
        ],
    );
    let _ = server;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (ok, out) = try_sh(&[
            "ip",
            "netns",
            "exec",
            &client,
            "nc",
            "-w",
            "2",
            "198.18.40.1",
            "8080",
        ]);
        if ok && out.contains("hello-from-pod") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer through the mapped port: {out}\n{}",
            n.lab.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // DEL runs the chain backwards: portmap, then Brindle.
    let (ok, out) = run_plugin(&n, PORTMAP, "DEL", &pm_conf(Some(&r)), "pm", &pod);
    assert!(ok, "portmap DEL: {out}");
    let rules = sh(&["ip", "netns", "exec", &n.host, "iptables-save", "-t", "nat"]);
    assert!(
        !rules.contains(&format!("{ip}:80")),
        "mapping left behind: {rules}"
    );
    assert!(n.cni("DEL", &conf, "pm", Some(&pod), "").0);
    assert!(n.handles().is_empty());
}

/// Rollback: a failure at each step after the address is allocated (before the veth, after the
/// pod is wired, before the endpoint is written) leaves nothing behind; a plugin killed at each
/// of those steps leaves what it made, and the runtime's DEL (or GC, when no DEL comes) removes
/// all of it.
#[test]
fn failures_and_kills_at_every_step_leave_nothing() {
    let mut n = Node::new("198.19.33.0/24", 28);
    let conf = n.conf("1.1.0");
    let clean = |n: &Node, what: &str| {
        assert_eq!(
            n.links().matches("cali").count(),
            0,
            "{what}: {}",
            n.links()
        );
        assert!(n.handles().is_empty(), "{what}: {:?}", n.handles());
        assert!(n.endpoints().is_empty(), "{what}: endpoints left");
        assert_eq!(allocations(&n.db), 0, "{what}: allocations left");
    };
    for (i, point) in ["wire", "wired", "endpoint"].iter().enumerate() {
        let p = n.lab.ns(&format!("f{i}"));
        let c = format!("fail-{point}");
        let (ok, out) = n.cni_env(
            "ADD",
            &conf,
            &c,
            Some(&p),
            "",
            &[("BRINDLE_CNI_FAILPOINT", point)],
        );
        assert!(!ok, "{point}: {out}");
        assert_eq!(out["code"], 199, "{point}: {out}");
        clean(&n, &format!("failure at {point}"));

        let kill = format!("{point}:kill");
        let c = format!("kill-{point}");
        let (ok, _) = n.cni_env(
            "ADD",
            &conf,
            &c,
            Some(&p),
            "",
            &[("BRINDLE_CNI_FAILPOINT", &kill)],
        );
        assert!(!ok, "{kill} did not stop the plugin");
        assert_eq!(
            n.handles().len(),
            1,
            "{kill}: the allocation was made before the kill"
        );
        if *point != "wire" {
            assert_eq!(
                n.links().matches("cali").count(),
                1,
                "{kill}: the veth was made"
            );
        }
        // The runtime calls DEL after a failed ADD.
        let (ok, out) = n.cni("DEL", &conf, &c, Some(&p), "");
        assert!(ok, "{kill}: DEL {out}");
        clean(&n, &format!("DEL after a kill at {point}"));
    }
    // No DEL ever comes: GC (nothing valid, no grace) removes what a killed ADD left.
    let p = n.lab.ns("g");
    let (ok, _) = n.cni_env(
        "ADD",
        &conf,
        "kill-gc",
        Some(&p),
        "",
        &[("BRINDLE_CNI_FAILPOINT", "endpoint:kill")],
    );
    assert!(!ok);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    gc["gc_grace_seconds"] = json!(0);
    let (ok, out) = n.cni("GC", &gc, "", None, "");
    assert!(ok, "{out}");
    clean(&n, "GC after a kill");
}
