//! Writes that time out but may have committed (issue: ambiguous timeouts). A wrapper backend
//! makes some IPAMBlock writes (single, or in a transaction with the handle) fail with
//! `Unavailable` in three ways: after committing, without
//! committing, and committing late (after the caller was told it failed). Allocations run
//! concurrently through it on SQLite and etcd; then, whatever each caller was told:
//!
//! - no address is allocated twice;
//! - every allocation in a block is counted by its handle (handle before block);
//! - every address a caller was given is held by its handle;
//! - releasing every handle (as a runtime's DEL after a failed ADD does) leaves no allocation
//!   and no handle behind.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use brindle_crds::document::resource_from_value;
use brindle_crds::{Kind, Resource};
use brindle_datastore::{Backend, Change, Datastore, Error, Key, Result, Revision, Stored, Write};
use brindle_ipam::{AssignArgs, Ipam};
use futures::stream::BoxStream;
use ipnetwork::IpNetwork;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The write commits, then the caller hears "unavailable".
    CommitThenFail,
    /// The write never happens.
    Lost,
    /// The caller hears "unavailable" at once; the write lands 30 ms later.
    LateCommit,
}

/// Fails every `every`-th IPAMBlock update with `fault`.
struct Ambiguous {
    inner: Arc<dyn Backend>,
    fault: Fault,
    every: usize,
    updates: AtomicUsize,
    faults: AtomicUsize,
    /// Offer the backend's multi-object transactions (handle and block in one commit), or
    /// hide them (handle first, then block, as on Kubernetes).
    txn: bool,
}

fn unavailable() -> Error {
    Error::Unavailable {
        endpoint: "ambiguous".into(),
        reason: "timed out (injected)".into(),
    }
}

#[async_trait]
impl Backend for Ambiguous {
    fn endpoint(&self) -> String {
        format!("ambiguous({})", self.inner.endpoint())
    }
    async fn get(&self, key: &Key) -> Result<Stored> {
        self.inner.get(key).await
    }
    async fn list(&self, kind: Kind, ns: Option<&str>) -> Result<(Vec<Stored>, Revision)> {
        self.inner.list(kind, ns).await
    }
    async fn create(&self, key: &Key, value: &Value) -> Result<Revision> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &Key, value: &Value, expected: Revision) -> Result<Revision> {
        let n = self.updates.fetch_add(1, Ordering::SeqCst) + 1;
        if key.kind != Kind::IPAMBlock || !n.is_multiple_of(self.every) {
            return self.inner.update(key, value, expected).await;
        }
        self.faults.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::CommitThenFail => {
                let _ = self.inner.update(key, value, expected).await;
                Err(unavailable())
            }
            Fault::Lost => Err(unavailable()),
            Fault::LateCommit => {
                let (inner, key, value) = (self.inner.clone(), key.clone(), value.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let _ = inner.update(&key, &value, expected).await;
                });
                Err(unavailable())
            }
        }
    }
    fn transactions(&self) -> bool {
        self.txn
    }
    async fn commit(&self, writes: &[Write]) -> Result<Vec<Revision>> {
        let n = self.updates.fetch_add(1, Ordering::SeqCst) + 1;
        let touches_block = writes.iter().any(|w| w.key().kind == Kind::IPAMBlock);
        if !touches_block || !n.is_multiple_of(self.every) {
            return self.inner.commit(writes).await;
        }
        self.faults.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::CommitThenFail => {
                let _ = self.inner.commit(writes).await;
                Err(unavailable())
            }
            Fault::Lost => Err(unavailable()),
            Fault::LateCommit => {
                let (inner, writes) = (self.inner.clone(), writes.to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let _ = inner.commit(&writes).await;
                });
                Err(unavailable())
            }
        }
    }
    async fn delete(&self, key: &Key, expected: Option<Revision>) -> Result<Revision> {
        self.inner.delete(key, expected).await
    }
    async fn changes(
        &self,
        kind: Kind,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Change>>> {
        self.inner.changes(kind, after).await
    }
}

const TASKS: usize = 4;
const PER_TASK: usize = 12;

async fn run(spec: &str, fault: Fault, txn: bool) {
    let plain = brindle_datastore::open(spec).await.unwrap();
    let pool = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
        "metadata": {"name": "p"}, "spec": {"cidr": "198.18.0.0/24", "blockSize": 28}}))
    .unwrap();
    plain.create(&pool).await.unwrap();
    let wrapper = Arc::new(Ambiguous {
        inner: plain.backend().clone(),
        fault,
        every: 3,
        updates: AtomicUsize::new(0),
        faults: AtomicUsize::new(0),
        txn,
    });
    let ipam = Ipam::new(Datastore::new(wrapper.clone()));

    // Allocate concurrently; remember what each caller was told.
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let ipam = ipam.clone();
        tasks.push(tokio::spawn(async move {
            let mut told = Vec::new();
            for i in 0..PER_TASK {
                let handle = format!("net.t{t}-{i}");
                let args = AssignArgs {
                    handle: handle.clone(),
                    node: format!("node-{}", t % 2),
                    num_v4: 1,
                    timestamp: 1_000,
                    ..Default::default()
                };
                told.push((handle, ipam.auto_assign(&args).await.map(|a| a.v4)));
            }
            told
        }));
    }
    let mut told = Vec::new();
    for t in tasks {
        told.extend(t.await.unwrap());
    }
    // Let late commits land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let faults = wrapper.faults.load(Ordering::SeqCst);
    let failed = told.iter().filter(|(_, r)| r.is_err()).count();
    eprintln!(
        "{spec} {fault:?} (transactions {txn}): {faults} injected faults, {failed} of {} allocations reported failed",
        told.len()
    );
    assert!(faults >= 5, "too few faults injected ({faults})");

    // Ground truth from the store itself (not through the wrapper).
    let mut holder: BTreeMap<IpAddr, String> = BTreeMap::new();
    let mut per_block: BTreeMap<(String, String), u32> = BTreeMap::new();
    let blocks = plain.list(Kind::IPAMBlock, None, None).await.unwrap();
    for b in blocks {
        let Resource::IPAMBlock(b) = b else { panic!() };
        let net: IpNetwork = b.spec.cidr.parse().unwrap();
        for (ip, a) in brindle_ipam::block::allocations(&b.spec, &net) {
            let h = a.handle_id.clone().unwrap();
            assert!(
                holder.insert(ip, h.clone()).is_none(),
                "{ip} allocated twice"
            );
            *per_block.entry((h, b.spec.cidr.clone())).or_default() += 1;
        }
    }
    for ((h, cidr), n) in &per_block {
        let key = Key::new(Kind::IPAMHandle, brindle_ipam::handle_name(h));
        let counted = match plain.get(&key).await {
            Ok(Resource::IPAMHandle(hd)) => hd.spec.block.get(cidr).copied().unwrap_or(0),
            _ => 0,
        };
        assert!(
            counted >= *n,
            "{fault:?}: handle {h} counts {counted} in {cidr} but the block holds {n} for it"
        );
    }
    for (h, r) in &told {
        if let Ok(ips) = r {
            for ip in ips {
                assert_eq!(holder.get(ip), Some(h), "{h} was given {ip}");
            }
        }
    }

    // DEL every handle, failed ADDs included: nothing may be left.
    // DEL goes through the faulty store too; a runtime retries a failed DEL.
    for (h, _) in &told {
        let mut attempt = 0;
        while let Err(e) = ipam.release_by_handle(h).await {
            attempt += 1;
            assert!(attempt < 10, "DEL of {h} keeps failing: {e}");
        }
    }
    let blocks = plain.list(Kind::IPAMBlock, None, None).await.unwrap();
    for b in blocks {
        let Resource::IPAMBlock(b) = b else { panic!() };
        let net: IpNetwork = b.spec.cidr.parse().unwrap();
        let left: Vec<_> = brindle_ipam::block::allocations(&b.spec, &net)
            .map(|(ip, a)| (ip, a.handle_id.clone()))
            .collect();
        assert!(left.is_empty(), "{fault:?}: leaked after DEL: {left:?}");
    }
    let handles = plain.list(Kind::IPAMHandle, None, None).await.unwrap();
    assert!(
        handles.is_empty(),
        "{fault:?}: handles left: {}",
        handles.len()
    );
}

async fn sqlite(fault: Fault, txn: bool) {
    let dir = tempfile::tempdir().unwrap();
    run(
        &format!("sqlite:{}", dir.path().join("ipam.db").display()),
        fault,
        txn,
    )
    .await;
}

async fn etcd(fault: Fault, txn: bool) {
    let server = brindle_tests::etcd::EtcdServer::start();
    run(&format!("etcd:{}", server.url()), fault, txn).await;
}

macro_rules! cases {
    ($($name:ident: $backend:ident $fault:ident;)*) => {
        mod handle_then_block {
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { $backend(Fault::$fault, false).await } )*
        }
        mod one_transaction {
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { $backend(Fault::$fault, true).await } )*
        }
    };
}

cases! {
    sqlite_commit_then_timeout: sqlite CommitThenFail;
    sqlite_lost_write: sqlite Lost;
    sqlite_late_commit: sqlite LateCommit;
    etcd_commit_then_timeout: etcd CommitThenFail;
    etcd_late_commit: etcd LateCommit;
}
