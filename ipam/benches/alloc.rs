//! Allocation throughput and latency: `cargo bench -p brindle-ipam --bench alloc`.
//!
//! N concurrent allocators (each a different node) call `auto_assign` for one IPv4 address in
//! a loop for a fixed time, on sqlite and a local etcd; reports allocations/s and p50/p99
//! latency. Not a test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use brindle_crds::document::resource_from_value;
use brindle_ipam::{AssignArgs, Ipam};
use serde_json::json;
use tokio::sync::Mutex;

const RUN: Duration = Duration::from_secs(4);

async fn measure(ipam: &Ipam, allocators: usize, round: usize) -> (f64, Duration, Duration) {
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..allocators {
        let ipam = ipam.clone();
        let lat = lat.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            let mut mine = Vec::new();
            while start.elapsed() < RUN {
                let t = Instant::now();
                let args = AssignArgs {
                    handle: format!("net.r{round}-a{a}-{i}"),
                    node: format!("node-{a}"),
                    num_v4: 1,
                    timestamp: 1,
                    ..Default::default()
                };
                ipam.auto_assign(&args).await.unwrap();
                mine.push(t.elapsed());
                i += 1;
            }
            lat.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let mut l = lat.lock().await.clone();
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (l.len() as f64 / elapsed.as_secs_f64(), pct(0.5), pct(0.99))
}

async fn report(name: &str, spec: &str) {
    let ipam = Ipam::new(brindle_datastore::open(spec).await.unwrap());
    let pool = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
        "metadata": {"name": "bench"}, "spec": {"cidr": "198.18.0.0/15", "blockSize": 26}}))
    .unwrap();
    ipam.datastore().create(&pool).await.unwrap();
    for (round, n) in [1usize, 8, 32].into_iter().enumerate() {
        let (rate, p50, p99) = measure(&ipam, n, round).await;
        println!(
            "{name:<13} {n:>2} allocators: {rate:>7.0} allocations/s  p50 {p50:>9.2?}  p99 {p99:>9.2?}"
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // BENCH_BACKENDS=sqlite,etcd picks backends (default: all).
        let only = std::env::var("BENCH_BACKENDS").unwrap_or_default();
        let want = |b: &str| only.is_empty() || only.split(',').any(|o| b.starts_with(o));
        if want("memory") {
            report("memory", "memory").await;
        }
        for (name, q) in [
            ("sqlite-full", ""),
            ("sqlite-normal", "?synchronous=normal"),
        ] {
            if want(name) {
                let db = dir.path().join(format!("{name}.db"));
                report(name, &format!("sqlite:{}{q}", db.display())).await;
            }
        }
        if want("etcd") {
            let server = brindle_tests::etcd::EtcdServer::start();
            report("etcd", &format!("etcd:{}", server.url())).await;
        }
    });
}
