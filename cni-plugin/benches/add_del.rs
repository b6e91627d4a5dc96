//! ADD and DEL latency, Brindle against Debian's `ptp` + `host-local` in the same run:
//! `cargo bench --workspace --bench add_del` (root; network namespaces; not a test).
//!
//! For each plugin: 1,000 pods one after another (ADD each, then DEL each), then 50 pods at
//! once (50 ADDs in parallel, then 50 DELs in parallel). Brindle runs on SQLite (FULL) and on a
//! local etcd with its data on the disk. Every pod is a network namespace of its own under one
//! node namespace; nothing touches the root namespace. Prints p50/p99 per row.
//! `BENCH_PODS` changes the sequential count (default 1000).

use std::time::{Duration, Instant};

use brindle_tests::cni::Call;
use brindle_tests::netns::Lab;
use serde_json::json;

const PARALLEL: usize = 50;

struct Plugin {
    name: String,
    bin: String,
    cni_path: String,
    conf: String,
}

fn pct(l: &mut [Duration], p: f64) -> Duration {
    l.sort();
    l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn call(host: &str, p: &Plugin, cmd: &str, container: &str, netns: &str) -> Duration {
    let t = Instant::now();
    let (ok, out, err) = Call {
        host_ns: host,
        bin: &p.bin,
        cni_path: &p.cni_path,
        command: cmd,
        container,
        netns: Some(netns),
        args: "",
        env: &[],
    }
    .run(&p.conf);
    let d = t.elapsed();
    assert!(ok, "{} {cmd} {container}: {out}{err}", p.name);
    d
}

fn row(name: &str, what: &str, l: &mut [Duration]) {
    let (p50, p99) = (pct(l, 0.5), pct(l, 0.99));
    println!(
        "{name:<22} {what:<14} n={:<5} p50 {:>8.2?}  p99 {:>8.2?}",
        l.len(),
        p50,
        p99
    );
}

fn run(host: &str, p: &Plugin, pods: &[String]) {
    // Sequential.
    let mut adds = Vec::new();
    let mut dels = Vec::new();
    for (i, ns) in pods.iter().enumerate() {
        adds.push(call(host, p, "ADD", &format!("seq{i}"), ns));
    }
    for (i, ns) in pods.iter().enumerate() {
        dels.push(call(host, p, "DEL", &format!("seq{i}"), ns));
    }
    row(&p.name, "ADD sequential", &mut adds);
    row(&p.name, "DEL sequential", &mut dels);
    // 50 at once.
    let par: Vec<String> = pods.iter().take(PARALLEL).cloned().collect();
    let mut adds: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = par
            .iter()
            .enumerate()
            .map(|(i, ns)| s.spawn(move || call(host, p, "ADD", &format!("par{i}"), ns)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut dels: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = par
            .iter()
            .enumerate()
            .map(|(i, ns)| s.spawn(move || call(host, p, "DEL", &format!("par{i}"), ns)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    row(&p.name, "ADD 50 at once", &mut adds);
    row(&p.name, "DEL 50 at once", &mut dels);
}

/// Writes the pool (in the calling process's namespace); false when the datastore does not
/// answer yet.
fn write_pool(datastore: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(ds) = brindle_datastore::open(datastore).await else {
            return false;
        };
        let pool = brindle_crds::document::resource_from_value(json!({
            "apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "pods"}, "spec": {"cidr": "198.19.0.0/16", "blockSize": 26}}))
        .unwrap();
        ds.apply(&pool).await.is_ok()
    })
}

/// Writes the pool from inside the node namespace (this binary run again there), retrying
/// for up to 30 s while the datastore starts.
fn write_pool_in(host: &str, datastore: &str) {
    let exe = std::env::current_exe().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = std::process::Command::new("ip")
            .args(["netns", "exec", host])
            .arg(&exe)
            .env("BRINDLE_BENCH_WRITE_POOL", datastore)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{datastore} never answered");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn brindle(lab: &Lab, host: &str, name: &str, datastore: &str) -> Plugin {
    write_pool_in(host, datastore);
    Plugin {
        name: name.into(),
        bin: env!("CARGO_BIN_EXE_brindle-cni").into(),
        cni_path: "/opt/cni/bin".into(),
        conf: json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "brindle-cni",
            "datastore": datastore, "nodename": "node-1", "mtu": 1450,
            "log_file_path": lab.path(&format!("{name}.log")).to_str().unwrap(),
            "ipam": {"type": "brindle-ipam"}})
        .to_string(),
    }
}

fn main() {
    if let Ok(ds) = std::env::var("BRINDLE_BENCH_WRITE_POOL") {
        std::process::exit(if write_pool(&ds) { 0 } else { 1 });
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    for bin in ["/usr/lib/cni/ptp", "/usr/lib/cni/host-local"] {
        if !std::path::Path::new(bin).exists() {
            eprintln!("skipping: {bin} is missing (apt-get install containernetworking-plugins)");
            return;
        }
    }
    let n: usize = std::env::var("BENCH_PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut lab = Lab::new();
    let host = lab.ns("node");
    let started = Instant::now();
    let pods: Vec<String> = (0..n.max(PARALLEL))
        .map(|i| lab.ns(&format!("p{i}")))
        .collect();
    eprintln!("{} pod namespaces in {:?}", pods.len(), started.elapsed());
    let ptp = Plugin {
        name: "ptp + host-local".into(),
        bin: "/usr/lib/cni/ptp".into(),
        cni_path: "/usr/lib/cni".into(),
        conf: json!({"cniVersion": "1.0.0", "name": "ptpnet", "type": "ptp", "ipMasq": false,
            "mtu": 1450,
            "ipam": {"type": "host-local", "subnet": "198.18.128.0/17",
                     "dataDir": lab.path("host-local").to_str().unwrap()}})
        .to_string(),
    };
    let pods = &pods[..n.max(PARALLEL)];
    run(&host, &ptp, &pods[..n]);
    let sqlite = brindle(
        &lab,
        &host,
        "brindle (sqlite)",
        &format!("sqlite:{}", lab.path("brindle.db").display()),
    );
    run(&host, &sqlite, &pods[..n]);
    // etcd inside the node namespace (where the plugin runs), its data on the disk
    // (target/tmp), not tmpfs.
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = disk.path().join("etcd");
    lab.spawn(
        &host,
        "etcd",
        &[
            "etcd",
            "--name=bench",
            &format!("--data-dir={}", data.display()),
            "--listen-client-urls=http://127.0.0.1:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=bench=http://127.0.0.1:2380",
            "--log-level=error",
        ],
    );
    let e = brindle(&lab, &host, "brindle (etcd)", "etcd:http://127.0.0.1:2379");
    run(&host, &e, &pods[..n]);
}
