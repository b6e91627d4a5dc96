//! Lost updates across OS processes: 8 processes each do 500 compare-and-swap increments of one
//! counter (retrying on conflict); the final value must be exactly 4,000. Then the same with one
//! process killed by SIGKILL mid-run: the counter must still equal the sum of the per-process
//! tallies written in the same object (no torn or lost write), and the store must keep working.
//!
//! The processes are this test binary run again in child mode (the `child` test below, which
//! does nothing unless `BRINDLE_LOST_UPDATE_CHILD` is set).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brindle_crds::document::resource_from_value;
use brindle_datastore::{Datastore, Key, Kind, Resource, RetryPolicy, retry_on_conflict};
use serde_json::json;

const CHILD_ENV: &str = "BRINDLE_LOST_UPDATE_CHILD";
const PROCESSES: u32 = 8;
const INCREMENTS: u32 = 500;
const TOTAL: &str = "198.18.255.0/24";

fn tally_key(i: u32) -> String {
    format!("198.18.0.{i}/32")
}

fn counter_key() -> Key {
    Key::new(Kind::IPAMHandle, "counter")
}

async fn create_counter(ds: &Datastore) {
    let mut block = serde_json::Map::new();
    block.insert(TOTAL.into(), 0.into());
    for i in 0..PROCESSES {
        block.insert(tally_key(i), 0.into());
    }
    let r = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPAMHandle",
        "metadata": {"name": "counter"}, "spec": {"handleID": "counter", "block": block}}))
    .unwrap();
    ds.create(&r).await.unwrap();
}

async fn increment(ds: &Datastore, who: u32) -> brindle_datastore::Result<()> {
    let policy = RetryPolicy {
        max_attempts: 10_000,
        ..RetryPolicy::default()
    };
    retry_on_conflict(&policy, "counter", || async {
        let mut r = ds.get(&counter_key()).await?;
        if let Resource::IPAMHandle(h) = &mut r {
            *h.spec.block.entry(TOTAL.into()).or_default() += 1;
            *h.spec.block.entry(tally_key(who)).or_default() += 1;
        }
        ds.update(&r).await
    })
    .await
    .map(|_| ())
}

async fn read_counter(ds: &Datastore) -> (u32, Vec<u32>) {
    let Resource::IPAMHandle(h) = ds.get(&counter_key()).await.unwrap() else {
        unreachable!()
    };
    let tallies = (0..PROCESSES)
        .map(|i| h.spec.block[&tally_key(i)])
        .collect();
    (h.spec.block[TOTAL], tallies)
}

/// Child mode: increment the counter INCREMENTS times.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let who: u32 = std::env::var("BRINDLE_CHILD_ID").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ds = brindle_datastore::open(&spec).await.unwrap();
        for _ in 0..INCREMENTS {
            increment(&ds, who).await.unwrap();
        }
    });
}

fn spawn_children(spec: &str) -> Vec<Child> {
    let exe = std::env::current_exe().unwrap();
    (0..PROCESSES)
        .map(|i| {
            Command::new(&exe)
                .args(["child", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, spec)
                .env("BRINDLE_CHILD_ID", i.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Kills every child still running when dropped (a failed assertion must not leak them).
struct Reaper(Vec<Child>);
impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_all(children: &mut Reaper, skip: Option<usize>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for (i, c) in children.0.iter_mut().enumerate() {
        if Some(i) == skip {
            continue;
        }
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "child {i} failed: {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "child {i} still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn run(spec: &str, kill_one: bool) {
    let ds = brindle_datastore::open(spec).await.unwrap();
    create_counter(&ds).await;
    let started = Instant::now();
    let mut children = Reaper(spawn_children(spec));
    let victim = if kill_one {
        // Let everyone get going, then kill one mid-run.
        std::thread::sleep(Duration::from_millis(300 + fastrand::u64(0..400)));
        let v = fastrand::usize(0..PROCESSES as usize);
        children.0[v].kill().unwrap();
        children.0[v].wait().unwrap();
        Some(v)
    } else {
        None
    };
    wait_all(&mut children, victim, Duration::from_secs(300));
    let (total, tallies) = read_counter(&ds).await;
    eprintln!(
        "{spec}: {} increments in {:?}, tallies {tallies:?}",
        total,
        started.elapsed()
    );
    assert_eq!(
        total,
        tallies.iter().sum::<u32>(),
        "torn write: total {total} vs tallies {tallies:?}"
    );
    for (i, t) in tallies.iter().enumerate() {
        if Some(i) == victim {
            assert!(*t <= INCREMENTS);
        } else {
            assert_eq!(*t, INCREMENTS, "process {i} lost updates");
        }
    }
    if victim.is_none() {
        assert_eq!(total, PROCESSES * INCREMENTS);
    }
    // The store still works after the kill.
    increment(&ds, 0).await.unwrap();
    assert_eq!(read_counter(&ds).await.0, total + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_lost_updates_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    run(
        &format!("sqlite:{}", dir.path().join("c.db").display()),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_torn_state_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    run(
        &format!("sqlite:{}", dir.path().join("c.db").display()),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_no_lost_updates_across_processes() {
    let server = brindle_tests::etcd::EtcdServer::start();
    run(&format!("etcd:{}", server.url()), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_no_torn_state_after_sigkill() {
    let server = brindle_tests::etcd::EtcdServer::start();
    run(&format!("etcd:{}", server.url()), true).await;
}
