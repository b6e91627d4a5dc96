//! Allocation throughput and latency: `cargo bench -p brindle-ipam --bench alloc`.
//!
//! N allocators (each a different node) call `auto_assign` for one IPv4 address in a loop for a
//! fixed time, either as tasks in one process or as separate processes (as CNI plugins are:
//! this binary run again in child mode), with 1, 8 and 32 allocators, on SQLite with
//! `synchronous=FULL` and NORMAL and on a local etcd whose data is on the disk (not tmpfs).
//! Allocator tasks serve pools, reservations, configuration and node labels from watches
//! (`Ipam::with_cache`), as a long-running allocator does; allocator processes read them each
//! time, as a CNI plugin does. Reports allocations/s and p50/p99
//! latency, and checks after every run that no address was handed out twice. Not a test.
//!
//! `BENCH_BACKENDS=sqlite-full,etcd` and `BENCH_MODES=tasks,processes` choose what runs;
//! `BENCH_SECS` sets the run length (default 4).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brindle_crds::document::resource_from_value;
use brindle_ipam::{AssignArgs, Ipam};
use ipnetwork::IpNetwork;
use serde_json::json;
use tokio::sync::Mutex;

const CHILD: &str = "BRINDLE_BENCH_CHILD";

fn run_for() -> Duration {
    Duration::from_secs(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4),
    )
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// One allocator's loop: allocate until `until`, returning each call's latency.
async fn allocate_until(
    ipam: &Ipam,
    node: String,
    prefix: String,
    until: Instant,
) -> Vec<Duration> {
    let mut lat = Vec::new();
    let mut i = 0;
    while Instant::now() < until {
        let t = Instant::now();
        let args = AssignArgs {
            handle: format!("net.{prefix}-{i}"),
            node: node.clone(),
            num_v4: 1,
            timestamp: 1,
            ..Default::default()
        };
        ipam.auto_assign(&args).await.unwrap();
        lat.push(t.elapsed());
        i += 1;
    }
    lat
}

async fn in_tasks(ipam: &Ipam, allocators: usize, round: &str) -> (Vec<Duration>, Duration) {
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let until = start + run_for();
    let mut tasks = Vec::new();
    for a in 0..allocators {
        let (ipam, lat) = (ipam.clone(), lat.clone());
        let prefix = format!("{round}-a{a}");
        tasks.push(tokio::spawn(async move {
            let mine = allocate_until(&ipam, format!("node-{a}"), prefix, until).await;
            lat.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let l = lat.lock().await.clone();
    (l, start.elapsed())
}

/// Child mode: wait for the common start time, allocate until its end, write latencies (µs,
/// one per line) to the output file.
fn child(spec: &str) {
    let node = std::env::var("BENCH_NODE").unwrap();
    let prefix = std::env::var("BENCH_PREFIX").unwrap();
    let out = PathBuf::from(std::env::var("BENCH_OUT").unwrap());
    let start_ms: u128 = std::env::var("BENCH_START_MS").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // No watch-fed cache: a CNI plugin is a short-lived process that reads what it needs.
        let ipam = Ipam::new(brindle_datastore::open(spec).await.unwrap());
        let wait = start_ms.saturating_sub(unix_ms());
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        let lat = allocate_until(&ipam, node, prefix, Instant::now() + run_for()).await;
        let text: String = lat.iter().map(|d| format!("{}\n", d.as_micros())).collect();
        std::fs::write(out, text).unwrap();
    });
}

async fn in_processes(
    spec: &str,
    allocators: usize,
    round: &str,
    dir: &Path,
) -> (Vec<Duration>, Duration) {
    // Start together, a second from now, so process start-up is not measured.
    let start_ms = unix_ms() + 1000;
    let mut children: Vec<_> = (0..allocators)
        .map(|a| {
            let out = dir.join(format!("{round}-{a}.lat"));
            let c = Command::new(std::env::current_exe().unwrap())
                .env(CHILD, spec)
                .env("BENCH_NODE", format!("node-{a}"))
                .env("BENCH_PREFIX", format!("{round}-p{a}"))
                .env("BENCH_OUT", &out)
                .env("BENCH_START_MS", start_ms.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            (c, out)
        })
        .collect();
    let mut lat = Vec::new();
    for (c, out) in &mut children {
        let st = c.wait().unwrap();
        assert!(st.success(), "allocator process failed: {st}");
        lat.extend(
            std::fs::read_to_string(&*out)
                .unwrap()
                .lines()
                .map(|l| Duration::from_micros(l.parse().unwrap())),
        );
    }
    let elapsed = Duration::from_millis((unix_ms() - start_ms) as u64)
        .min(run_for() + Duration::from_secs(1));
    (lat, elapsed.max(run_for()))
}

/// No address twice, and as many allocations in the blocks as the allocators made.
async fn check(ipam: &Ipam, made: usize) {
    let mut seen = BTreeSet::new();
    for b in ipam.blocks().await.unwrap() {
        let net: IpNetwork = b.spec.cidr.parse().unwrap();
        for (ip, _) in brindle_ipam::block::allocations(&b.spec, &net) {
            assert!(seen.insert(ip), "{ip} allocated twice");
        }
    }
    assert_eq!(
        seen.len(),
        made,
        "allocations in the blocks vs allocations made"
    );
}

async fn report(name: &str, spec: &str, modes: &[&str], dir: &Path) {
    let ipam = Ipam::new(brindle_datastore::open(spec).await.unwrap());
    let pool = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
        "metadata": {"name": "bench"}, "spec": {"cidr": "198.18.0.0/15", "blockSize": 26}}))
    .unwrap();
    ipam.datastore().create(&pool).await.unwrap();
    // Pools, reservations, configuration and labels from watches, as a long-running
    // allocator has them.
    let ipam = ipam.with_cache();
    let mut made = 0;
    for mode in modes {
        for n in [1usize, 8, 32] {
            let round = format!("{mode}{n}");
            let (mut l, elapsed) = match *mode {
                "processes" => in_processes(spec, n, &round, dir).await,
                _ => in_tasks(&ipam, n, &round).await,
            };
            made += l.len();
            check(&ipam, made).await;
            l.sort();
            let pct = |p: f64| {
                l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or_default()
            };
            let rate = l.len() as f64 / elapsed.as_secs_f64();
            println!(
                "{name:<13} {mode:<9} {n:>2} allocators: {rate:>7.0} allocations/s  p50 {:>9.2?}  p99 {:>9.2?}  (no duplicates in {made})",
                pct(0.5),
                pct(0.99)
            );
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // On the disk, not tmpfs: fsync must cost what it costs on a node.
        let disk = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tempfile::tempdir_in(disk).unwrap();
        let only = std::env::var("BENCH_BACKENDS").unwrap_or_default();
        let want = |b: &str| only.is_empty() || only.split(',').any(|o| b.starts_with(o));
        let modes_env = std::env::var("BENCH_MODES").unwrap_or_else(|_| "tasks,processes".into());
        let modes: Vec<&str> = modes_env.split(',').collect();
        if want("memory") && modes.contains(&"tasks") {
            report("memory", "memory", &["tasks"], dir.path()).await;
        }
        for (name, q) in [
            ("sqlite-full", ""),
            ("sqlite-normal", "?synchronous=normal"),
        ] {
            if want(name) {
                let db = dir.path().join(format!("{name}.db"));
                report(
                    name,
                    &format!("sqlite:{}{q}", db.display()),
                    &modes,
                    dir.path(),
                )
                .await;
            }
        }
        if want("etcd") {
            let server = brindle_tests::etcd::EtcdServer::start_under(disk);
            report(
                "etcd-disk",
                &format!("etcd:{}", server.url()),
                &modes,
                dir.path(),
            )
            .await;
        }
    });
}
