//! Eight OS processes, each a different node, allocate and release 2,000 times each in a small
//! pool (8 blocks of 16 addresses for up to 8 × 40 wanted) that forces block claims, borrowing
//! and exhaustion. Afterwards every allocated address is unique and the datastore's view equals
//! what the processes believe they hold. Then chaos: the same with processes SIGKILLed at
//! random moments; `ipam check` finds exactly the leaks that the killed processes' own journals
//! (written before each call) say they held, GC frees them, still zero duplicates.
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
        let mut journal = Journal::create(&out);
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
                journal.line(&format!("alloc {handle}"));
                match ipam.auto_assign(&args).await {
                    Ok(a) => {
                        journal.line(&format!("got {handle} {}", a.v4[0]));
                        held.insert(handle, a.v4[0]);
                    }
                    Err(Error::Exhausted { .. }) => {
                        journal.line(&format!("none {handle}"));
                        exhausted += 1
                    }
                    Err(e) => panic!("node {node}: {e}"),
                }
            } else {
                let i = rng.usize(0..held.len());
                let handle = held.keys().nth(i).unwrap().clone();
                journal.line(&format!("release {handle}"));
                let freed = ipam.release_by_handle(&handle).await.unwrap();
                assert_eq!(freed, vec![held[&handle]], "node {node} releasing {handle}");
                journal.line(&format!("released {handle}"));
                held.remove(&handle);
            }
        }
        journal.line("done");
        eprintln!(
            "node {node}: holds {}, exhausted {exhausted} times",
            held.len()
        );
        std::fs::write(out.with_extension("exhausted"), exhausted.to_string()).unwrap();
    });
}

/// A process's record of what it does, written (unbuffered, so it survives SIGKILL) before
/// each datastore call and after each answer.
struct Journal(std::fs::File);

impl Journal {
    fn create(path: &Path) -> Journal {
        Journal(std::fs::File::create(path).unwrap())
    }
    fn line(&mut self, l: &str) {
        use std::io::Write;
        self.0.write_all(format!("{l}\n").as_bytes()).unwrap();
    }
}

/// What a journal says: the addresses surely held, the operation in flight when it stopped
/// (its handle, and whether it was an allocation), and whether the run finished.
#[derive(Default, Debug)]
struct Replay {
    held: Holdings,
    in_flight: Option<(String, bool)>,
    done: bool,
}

fn replay(path: &Path) -> Replay {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut r = Replay::default();
    for line in text.lines() {
        let mut w = line.split(' ');
        match (w.next(), w.next(), w.next()) {
            (Some("alloc"), Some(h), None) => r.in_flight = Some((h.to_string(), true)),
            (Some("release"), Some(h), None) => r.in_flight = Some((h.to_string(), false)),
            (Some("got"), Some(h), Some(ip)) => {
                if let Ok(ip) = ip.parse() {
                    r.held.insert(h.to_string(), ip);
                    r.in_flight = None;
                }
            }
            (Some("released"), Some(h), None) => {
                r.held.remove(h);
                r.in_flight = None;
            }
            (Some("none"), Some(_), None) => r.in_flight = None,
            (Some("done"), None, None) => r.done = true,
            // A line cut by the kill: the operation it announced had not been sent yet.
            _ => {}
        }
    }
    r
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
                    .env("BRINDLE_OUT", dir.join(format!("node-{i}.journal")))
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
            let st = children.0[v].wait().unwrap();
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(st.signal(), Some(9), "victim node {v} was not killed: {st}");
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

    let journals: Vec<Replay> = (0..NODES)
        .map(|i| replay(&dir.join(format!("node-{i}.journal"))))
        .collect();
    let mut survivors: Holdings = BTreeMap::new();
    for (i, j) in journals.iter().enumerate() {
        if victims.contains(&i) {
            assert!(!j.done, "victim node {i} had finished before it was killed");
        } else {
            assert!(j.done && j.in_flight.is_none(), "node {i} did not finish");
            survivors.extend(j.held.clone());
        }
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
    let leaked: Holdings = report
        .leaked
        .iter()
        .map(|l| (l.handle.clone().expect("a leak without handle"), l.ip))
        .collect();
    assert_eq!(leaked.len(), report.leaked.len(), "one handle leaked twice");
    // The leaks must be what the victims' journals say they held: every address a victim was
    // given and had not released, plus possibly the one operation it was killed in (an
    // allocation that may have committed, a release that may have).
    let mut unexplained = leaked.clone();
    for &v in &victims {
        let j = &journals[v];
        for (h, ip) in &j.held {
            let in_release = j.in_flight.as_ref() == Some(&(h.clone(), false));
            match unexplained.remove(h) {
                Some(found) => assert_eq!(found, *ip, "{h} leaked with another address"),
                None => assert!(
                    in_release,
                    "victim node {v} held {h} ({ip}); check missed it"
                ),
            }
        }
        if let Some((h, true)) = &j.in_flight {
            unexplained.remove(h);
        }
    }
    assert!(
        unexplained.is_empty(),
        "check reports leaks no victim held: {unexplained:?}"
    );
    let recorded: usize = victims.iter().map(|v| journals[*v].held.len()).sum();
    eprintln!(
        "victims {victims:?} held {recorded} addresses by their journals; check found {} leaks",
        leaked.len()
    );
    assert!(
        recorded > 0,
        "the victims held nothing: the chaos tested nothing"
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
