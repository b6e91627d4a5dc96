//! Crash and power cut on SQLite (`synchronous=FULL`, the default).
//!
//! One process allocates and releases, writing a journal line before each release and after
//! every answer it gets;
//! it is SIGKILLed mid-run. Then:
//!
//! - **kill**: the database as the process left it holds every allocation the journal says was
//!   acknowledged and not released;
//! - **power cut**: copies of the database whose write-ahead log is cut at random points stand
//!   for what a disk could hold after power is lost. With `synchronous=FULL` every acknowledged
//!   commit was synced before the caller heard of it, so a cut can only tear what follows the
//!   last commit: cuts at or after the end of the log's last commit frame must lose nothing.
//!   Cuts before it stand for lost syncs (what `synchronous=NORMAL` allows): the database must
//!   still open at an earlier commit in which IPAM's invariants hold (no address twice, every
//!   allocation counted by its handle), since each compare-and-swap is one transaction.
//!
//! The child is this test binary run again (`child`, a no-op unless `BRINDLE_CRASH_CHILD` is
//! set).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brindle_crds::document::resource_from_value;
use brindle_crds::{Kind, Resource};
use brindle_ipam::{AssignArgs, Ipam};
use ipnetwork::IpNetwork;
use serde_json::json;

const CHILD_ENV: &str = "BRINDLE_CRASH_CHILD";

#[test]
fn child() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let journal = PathBuf::from(std::env::var("BRINDLE_JOURNAL").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ipam = Ipam::new(
            brindle_datastore::open(&format!("sqlite:{db}"))
                .await
                .unwrap(),
        );
        let mut j = std::fs::File::create(&journal).unwrap();
        let mut held: Vec<String> = Vec::new();
        let mut rng = fastrand::Rng::with_seed(7);
        // Bounded: the parent kills us long before the end.
        for seq in 0..100_000 {
            if held.len() < 60 && (held.len() < 5 || rng.f32() < 0.6) {
                let handle = format!("net.c-{seq}");
                let args = AssignArgs {
                    handle: handle.clone(),
                    node: "node-a".into(),
                    num_v4: 1,
                    timestamp: 1_000,
                    ..Default::default()
                };
                let a = ipam.auto_assign(&args).await.unwrap();
                j.write_all(format!("got {handle} {}\n", a.v4[0]).as_bytes())
                    .unwrap();
                held.push(handle);
            } else {
                let h = held.swap_remove(rng.usize(0..held.len()));
                j.write_all(format!("release {h}\n").as_bytes()).unwrap();
                ipam.release_by_handle(&h).await.unwrap();
                j.write_all(format!("released {h}\n").as_bytes()).unwrap();
            }
        }
    });
}

/// handle → address, for the allocations the journal says are acknowledged and not being
/// released (a release the kill interrupted may or may not have committed).
fn acknowledged(journal: &Path) -> BTreeMap<String, IpAddr> {
    let mut held = BTreeMap::new();
    for line in std::fs::read_to_string(journal).unwrap().lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["got", h, ip] => {
                if let Ok(ip) = ip.parse() {
                    held.insert(h.to_string(), ip);
                }
            }
            // Announced before the call: from here on its outcome is unknown until "released".
            ["release", h] | ["released", h] => {
                held.remove(*h);
            }
            _ => {} // a line cut by the kill
        }
    }
    held
}

/// The byte offset just after the last commit frame of the log's current generation: frames
/// follow the 32-byte header back to back (24-byte frame header + one page); a frame belongs
/// to the current generation when its salts equal the header's; a commit frame records the
/// database size (non-zero) at byte 4 of its header.
fn last_commit_end(wal: &[u8]) -> usize {
    if wal.len() < 32 {
        return 0;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let page = be(&wal[8..12]) as usize;
    let salts = &wal[16..24];
    let (mut at, mut end) = (32, 32);
    while at + 24 + page <= wal.len() {
        let h = &wal[at..at + 24];
        if &h[8..16] != salts {
            break;
        }
        at += 24 + page;
        if be(&h[4..8]) != 0 {
            end = at;
        }
    }
    end
}

/// Opens a copy and checks IPAM's invariants; returns handle → address of what it holds.
async fn consistent_state(db: &Path) -> BTreeMap<String, IpAddr> {
    let ds = brindle_datastore::open(&format!("sqlite:{}", db.display()))
        .await
        .unwrap_or_else(|e| panic!("{} does not open: {e}", db.display()));
    let mut by_handle = BTreeMap::new();
    let mut per_block: BTreeMap<(String, String), u32> = BTreeMap::new();
    for b in ds.list(Kind::IPAMBlock, None, None).await.unwrap() {
        let Resource::IPAMBlock(b) = b else { panic!() };
        let net: IpNetwork = b.spec.cidr.parse().unwrap();
        for (ip, a) in brindle_ipam::block::allocations(&b.spec, &net) {
            let h = a.handle_id.clone().unwrap();
            assert!(by_handle.insert(h.clone(), ip).is_none(), "{h} twice");
            *per_block.entry((h, b.spec.cidr.clone())).or_default() += 1;
        }
    }
    let mut seen: Vec<IpAddr> = by_handle.values().copied().collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), by_handle.len(), "an address allocated twice");
    for ((h, cidr), n) in per_block {
        let key = brindle_datastore::Key::new(Kind::IPAMHandle, brindle_ipam::handle_name(&h));
        let counted = match ds.get(&key).await {
            Ok(Resource::IPAMHandle(hd)) => hd.spec.block.get(&cidr).copied().unwrap_or(0),
            _ => 0,
        };
        assert!(
            counted >= n,
            "{}: {h} holds {n} in {cidr}, its handle counts {counted}",
            db.display()
        );
    }
    by_handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_and_power_cut_lose_no_acknowledged_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ipam.db");
    let journal = dir.path().join("journal");
    {
        let ds = brindle_datastore::open(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
        let pool = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
            "metadata": {"name": "p"}, "spec": {"cidr": "198.18.0.0/24", "blockSize": 28}}))
        .unwrap();
        ds.create(&pool).await.unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .env("BRINDLE_JOURNAL", &journal)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Let it work until it has done a few hundred operations (bounded in time), then kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let lines = std::fs::read_to_string(&journal)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines >= 300 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the child died early");
        assert!(Instant::now() < deadline, "the child made no progress");
    }
    child.kill().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    let acked = acknowledged(&journal);
    assert!(!acked.is_empty());

    // Keep a pristine copy of what the killed process left (opening would checkpoint it).
    let wal = std::fs::read(dir.path().join("ipam.db-wal")).unwrap();
    let main = std::fs::read(&db).unwrap();
    let end = last_commit_end(&wal);
    assert!(end > 32, "the log holds no commit (length {})", wal.len());

    // Kill: nothing acknowledged is lost.
    let state = consistent_state(&db).await;
    for (h, ip) in &acked {
        assert_eq!(
            state.get(h),
            Some(ip),
            "acknowledged {h} ({ip}) lost by the kill"
        );
    }

    // Power cuts: the log cut at random points, in copies.
    let mut cuts: Vec<usize> = (0..10).map(|_| fastrand::usize(32..=wal.len())).collect();
    cuts.extend([end, wal.len(), 32, end.saturating_sub(1).max(32)]);
    let (mut torn_tail, mut lost_syncs) = (0, 0);
    for (i, cut) in cuts.iter().enumerate() {
        let d = dir.path().join(format!("cut-{i}"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("ipam.db"), &main).unwrap();
        std::fs::write(d.join("ipam.db-wal"), &wal[..*cut]).unwrap();
        let state = consistent_state(&d.join("ipam.db")).await;
        if *cut >= end {
            torn_tail += 1;
            for (h, ip) in &acked {
                assert_eq!(
                    state.get(h),
                    Some(ip),
                    "cut at {cut} (last commit ends at {end}) lost {h}"
                );
            }
        } else {
            lost_syncs += 1;
        }
    }
    eprintln!(
        "log {} bytes, last commit ends at {end}; {} acknowledged allocations; {torn_tail} cuts after it lost nothing, {lost_syncs} before it opened consistent",
        wal.len(),
        acked.len()
    );
}
