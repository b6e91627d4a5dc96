//! CAS update throughput: `cargo bench -p brindle-datastore --bench cas`.
//!
//! For sqlite and a local etcd, at 1 and 8 concurrent writers: each writer reads its own counter
//! object and compare-and-swaps it back incremented, for a fixed time. A second run puts all 8
//! writers on one shared object (every conflict retried). Prints updates/s. Not a test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brindle_crds::document::resource_from_value;
use brindle_datastore::{Datastore, Key, Kind, Resource, RetryPolicy, retry_on_conflict};
use serde_json::json;

const RUN: Duration = Duration::from_secs(3);

async fn counter(ds: &Datastore, name: &str) {
    let r = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPAMHandle",
        "metadata": {"name": name}, "spec": {"handleID": name, "block": {"198.18.0.0/26": 0}}}))
    .unwrap();
    let _ = ds.create(&r).await;
}

async fn bump(ds: &Datastore, key: &Key) {
    let policy = RetryPolicy {
        max_attempts: 100_000,
        ..RetryPolicy::default()
    };
    retry_on_conflict(&policy, "bench", || async {
        let mut r = ds.get(key).await?;
        if let Resource::IPAMHandle(h) = &mut r {
            *h.spec.block.entry("198.18.0.0/26".into()).or_default() += 1;
        }
        ds.update(&r).await
    })
    .await
    .unwrap();
}

async fn measure(ds: &Datastore, writers: usize, shared: bool) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    for w in 0..writers {
        counter(ds, &format!("w{w}")).await;
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let ds = ds.clone();
        let done = done.clone();
        let key = Key::new(
            Kind::IPAMHandle,
            if shared {
                "w0".to_string()
            } else {
                format!("w{w}")
            },
        );
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < RUN {
                bump(&ds, &key).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn report(name: &str, ds: &Datastore) {
    for (writers, shared) in [(1, false), (8, false), (8, true)] {
        let rate = measure(ds, writers, shared).await;
        let what = if shared {
            "one shared object"
        } else {
            "own objects"
        };
        println!("{name:<7} {writers} writer(s), {what:<17}: {rate:>8.0} CAS updates/s");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; filters are not supported.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let ds = brindle_datastore::open(&format!("sqlite:{}", dir.path().join("b.db").display()))
            .await
            .unwrap();
        report("sqlite", &ds).await;
        let server = brindle_tests::etcd::EtcdServer::start();
        let ds = brindle_datastore::open(&format!("etcd:{}", server.url()))
            .await
            .unwrap();
        report("etcd", &ds).await;
        let ds = brindle_datastore::open("memory").await.unwrap();
        report("memory", &ds).await;
    });
}
