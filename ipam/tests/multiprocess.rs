//! Eight OS processes, each a different node, allocate and release 2,000 times each in a small
//! pool (8 blocks of 16 addresses for up to 8 × 40 wanted) that forces block claims, borrowing
//! and exhaustion. Afterwards every allocated address is unique and the datastore's view equals
//! what the processes believe they hold. Then chaos: the same with processes SIGKILLed at
//! random moments; `ipam check` finds every leak, GC frees them, still zero duplicates.
//!
//! The processes are this test binary run again in child mode (`child`, a no-op unless
//! `BRINDLE_IPAM_CHILD` is set).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brindle_crds::document::resource_from_value;
use brindle_ipam::{AssignArgs, Error, Ipam, LiveState};
use ipnetwork::IpNetwork;
use serde_json::json;

const CHILD_ENV: &str = "BRINDLE_IPAM_CHILD";
const NODES: usize = 8;
const OPS: usize = 2000;
const WANT_MAX: usize = 40;

/// What one process holds at the end: handle → address.
type Holdings = BTreeMap<String, IpAddr>;

#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let node: usize = std::env::var("BRINDLE_NODE").unwrap().parse().unwrap();
    let out = PathBuf::from(std::env::var("BRINDLE_OUT").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ipam = Ipam::new(brindle_datastore::open(&spec).await.unwrap());
        let mut held: Holdings = BTreeMap::new();
        let (mut exhausted, mut seq) = (0, 0);
        let mut rng = fastrand::Rng::with_seed(node as u64);
        for _ in 0..OPS {
            let want_alloc = held.is_empty() || (held.len() < WANT_MAX && rng.f32() < 0.6);
            if want_alloc {
                seq += 1;
                let handle = format!("net.n{node}-{seq}");
                let args = AssignArgs {
                    handle: handle.clone(),
                    node: format!("node-{node}"),
                    num_v4: 1,
                    timestamp: 1_000,
                    ..Default::default()
                };
                match ipam.auto_assign(&args).await {
                    Ok(a) => {
                        held.insert(handle, a.v4[0]);
                    }
                    Err(Error::Exhausted { .. }) => exhausted += 1,
                    Err(e) => panic!("node {node}: {e}"),
                }
            } else {
                let i = rng.usize(0..held.len());
                let handle = held.keys().nth(i).unwrap().clone();
                let freed = ipam.release_by_handle(&handle).await.unwrap();
                assert_eq!(freed, vec![held[&handle]], "node {node} releasing {handle}");
                held.remove(&handle);
            }
            // Publish holdings as we go, so a killed process's last known state is on disk.
            if seq % 25 == 0 {
                write_holdings(&out, &held);
            }
        }
        write_holdings(&out, &held);
        eprintln!(
            "node {node}: holds {}, exhausted {exhausted} times",
            held.len()
        );
        std::fs::write(out.with_extension("exhausted"), exhausted.to_string()).unwrap();
    });
}

fn write_holdings(path: &Path, held: &Holdings) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(held).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn read_holdings(path: &Path) -> Holdings {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|_| b"{}".to_vec())).unwrap()
}

struct Reaper(Vec<Child>);
impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn setup(spec: &str) -> Ipam {
    let ipam = Ipam::new(brindle_datastore::open(spec).await.unwrap());
    let pool = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
        "metadata": {"name": "tiny"}, "spec": {"cidr": "198.18.0.0/25", "blockSize": 28}}))
    .unwrap();
    ipam.datastore().create(&pool).await.unwrap();
    ipam
}

/// Every allocation in the datastore: handle → address (duplicates detected on the way).
async fn datastore_view(ipam: &Ipam) -> (BTreeMap<String, IpAddr>, usize) {
    let mut by_handle = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut borrowed = 0;
    for b in ipam.blocks().await.unwrap() {
        let net: IpNetwork = b.spec.cidr.parse().unwrap();
        for (ip, a) in brindle_ipam::block::allocations(&b.spec, &net) {
            assert!(seen.insert(ip), "{ip} allocated twice");
            let node = a.secondary.get("node").cloned().unwrap_or_default();
            if b.spec.affinity.as_deref() != Some(&format!("host:{node}")) {
                borrowed += 1;
            }
            assert!(by_handle.insert(a.handle_id.clone().unwrap(), ip).is_none());
        }
    }
    (by_handle, borrowed)
}

async fn run(spec: &str, dir: &Path, kill: usize) {
    let ipam = setup(spec).await;
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut children = Reaper(
        (0..NODES)
            .map(|i| {
                Command::new(&exe)
                    .args(["child", "--exact", "--nocapture", "--test-threads=1"])
                    .env(CHILD_ENV, spec)
                    .env("BRINDLE_NODE", i.to_string())
                    .env("BRINDLE_OUT", dir.join(format!("node-{i}.json")))
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let mut victims = BTreeSet::new();
    while victims.len() < kill {
        std::thread::sleep(Duration::from_millis(200 + fastrand::u64(0..800)));
        let v = fastrand::usize(0..NODES);
        if victims.insert(v) {
            children.0[v].kill().unwrap();
            children.0[v].wait().unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    for (i, c) in children.0.iter_mut().enumerate() {
        if victims.contains(&i) {
            continue;
        }
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                assert!(st.success(), "node {i} failed: {st}");
                break;
            }
            assert!(Instant::now() < deadline, "node {i} still running");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!(
        "{spec}: {NODES} nodes × {OPS} ops in {:?}",
        started.elapsed()
    );

    let mut survivors: Holdings = BTreeMap::new();
    for i in (0..NODES).filter(|i| !victims.contains(i)) {
        survivors.extend(read_holdings(&dir.join(format!("node-{i}.json"))));
    }
    let unique: BTreeSet<IpAddr> = survivors.values().copied().collect();
    assert_eq!(
        unique.len(),
        survivors.len(),
        "two processes believe they hold one address"
    );

    let (view, borrowed) = datastore_view(&ipam).await;
    eprintln!(
        "{} allocations, {borrowed} borrowed from other nodes' blocks",
        view.len()
    );
    let exhausted: u64 = (0..NODES)
        .filter(|i| !victims.contains(i))
        .map(|i| {
            std::fs::read_to_string(dir.join(format!("node-{i}.exhausted")))
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    if kill == 0 {
        // The pool is small enough that the run must have hit every path.
        assert!(borrowed > 0, "no address was borrowed");
        assert!(exhausted > 0, "the pool was never exhausted");
        assert_eq!(ipam.blocks().await.unwrap().len(), 8, "every block claimed");
    }
    let nodes: BTreeSet<String> = (0..NODES).map(|i| format!("node-{i}")).collect();
    if kill == 0 {
        assert_eq!(view, survivors, "the datastore and the processes disagree");
        let report = ipam
            .check(
                &LiveState {
                    nodes: Some(nodes),
                    handles: Some(survivors.keys().cloned().collect()),
                    ..Default::default()
                },
                2_000,
            )
            .await
            .unwrap();
        assert!(report.is_clean(), "{report:?}");
        return;
    }
    // Chaos: the killed processes' allocations are leaks; check finds them, GC frees them.
    let live = LiveState {
        nodes: Some(nodes),
        handles: Some(survivors.keys().cloned().collect()),
        ..Default::default()
    };
    let report = ipam.check(&live, 2_000).await.unwrap();
    let leaked: BTreeSet<IpAddr> = report.leaked.iter().map(|l| l.ip).collect();
    let expected_leaks: BTreeSet<IpAddr> = view
        .iter()
        .filter(|(h, _)| !survivors.contains_key(*h))
        .map(|(_, ip)| *ip)
        .collect();
    assert_eq!(
        leaked, expected_leaks,
        "check must find exactly the killed processes' addresses"
    );
    assert!(report.duplicates.is_empty());
    ipam.gc(&live, 2_000, Duration::ZERO).await.unwrap();
    let (after, _) = datastore_view(&ipam).await;
    assert_eq!(
        after, survivors,
        "after GC only the survivors' addresses remain"
    );
    let report = ipam.check(&live, 2_000).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_eight_nodes_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    run(
        &format!("sqlite:{}", dir.path().join("ipam.db").display()),
        dir.path(),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_chaos_sigkill_then_gc() {
    let dir = tempfile::tempdir().unwrap();
    run(
        &format!("sqlite:{}", dir.path().join("ipam.db").display()),
        dir.path(),
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_eight_nodes_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let server = brindle_tests::etcd::EtcdServer::start();
    run(&format!("etcd:{}", server.url()), dir.path(), 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_chaos_sigkill_then_gc() {
    let dir = tempfile::tempdir().unwrap();
    let server = brindle_tests::etcd::EtcdServer::start();
    run(&format!("etcd:{}", server.url()), dir.path(), 3).await;
}
