//! brindle-cni end to end, as a container runtime calls it: a node namespace, pod namespaces
//! made by the test, the real binary with stdin and `CNI_*` variables, a sqlite datastore.
//! Checks what the kernel and the datastore hold after each call, and that failed ADDs leave
//! nothing behind. Needs root, iproute2 and ping. Pods in 198.19.0.0/16.

use std::io::Write;
use std::process::{Command, Stdio};

use brindle_tests::netns::*;
use serde_json::{Value, json};

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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
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
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.host,
            env!("CARGO_BIN_EXE_brindle-cni"),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", cmd)
        .env("CNI_PATH", "/opt/cni/bin");
        if !container.is_empty() {
            c.env("CNI_CONTAINERID", container)
                .env("CNI_IFNAME", "eth0");
        }
        if let Some(ns) = netns {
            c.env("CNI_NETNS", format!("/var/run/netns/{ns}"));
        }
        if !args.is_empty() {
            c.env("CNI_ARGS", args);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!(
                    "stdout is not JSON ({e}): {text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        };
        (out.status.success(), v)
    }

    fn links(&self) -> String {
        sh(&["ip", "-n", &self.host, "-o", "link", "show"])
    }

    fn handles(&self) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
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
