//! One conformance suite, run unchanged against every backend it can reach: memory, sqlite and a
//! real etcd (Debian's etcd-server, started per test on free loopback ports).

use std::sync::Arc;
use std::time::Duration;

use brindle_crds::document::resource_from_value;
use brindle_datastore::etcd::EtcdBackend;
use brindle_datastore::memory::MemoryBackend;
use brindle_datastore::sqlite::SqliteBackend;
use brindle_datastore::{
    Datastore, Error, Key, Kind, Op, Resource, Revision, WatchEvent, WatchStream, revision_of,
};
use brindle_selector::Selector;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::json;

#[path = "common/flaky.rs"]
mod flaky;

/// A datastore under test, a way to compact its history, and whatever keeps it alive.
struct Harness {
    ds: Datastore,
    compact: Box<dyn Fn(Revision) -> BoxFuture<'static, ()> + Send + Sync>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn memory() -> Harness {
    let b = MemoryBackend::new();
    let c = b.clone();
    Harness {
        ds: Datastore::new(Arc::new(b)),
        compact: Box::new(move |r| {
            c.compact(r);
            Box::pin(async {})
        }),
        _guard: Box::new(()),
    }
}

async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let b = SqliteBackend::open(dir.path().join("brindle.db")).unwrap();
    let c = b.clone();
    Harness {
        ds: Datastore::new(Arc::new(b)),
        compact: Box::new(move |r| {
            let c = c.clone();
            Box::pin(async move { c.compact(r).await.unwrap() })
        }),
        _guard: Box::new(dir),
    }
}

async fn etcd() -> Harness {
    let server = brindle_tests::etcd::EtcdServer::start();
    let b = EtcdBackend::connect(&[server.url()], "/brindle-test/")
        .await
        .unwrap();
    let c = b.clone();
    Harness {
        ds: Datastore::new(Arc::new(b)),
        compact: Box::new(move |r| {
            let c = c.clone();
            Box::pin(async move { c.compact(r).await.unwrap() })
        }),
        _guard: Box::new(server),
    }
}

fn pool(name: &str, cidr: &str) -> Resource {
    resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
        "metadata": {"name": name, "labels": {"zone": "a"}}, "spec": {"cidr": cidr}}))
    .unwrap()
}

fn policy(ns: &str, name: &str) -> Resource {
    resource_from_value(
        json!({"apiVersion": "brindle.dev/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": {"selector": "all()"}}),
    )
    .unwrap()
}

fn spec_cidr(r: &Resource) -> String {
    match r {
        Resource::IPPool(p) => p.spec.cidr.clone(),
        other => panic!("not a pool: {other:?}"),
    }
}

fn with_cidr(r: &Resource, cidr: &str) -> Resource {
    let mut r = r.clone();
    if let Resource::IPPool(p) = &mut r {
        p.spec.cidr = cidr.to_string();
    }
    r
}

/// The next watch event, within 10 s.
async fn next(w: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch event in time")
        .expect("watch open")
}

async fn crud_and_errors(h: Harness) {
    let ds = &h.ds;
    let key = Key::new(Kind::IPPool, "a");
    assert!(matches!(ds.get(&key).await, Err(Error::NotFound { .. })));
    let created = ds.create(&pool("a", "198.18.0.0/24")).await.unwrap();
    let rev1 = revision_of(&created).unwrap();
    assert!(matches!(
        ds.create(&pool("a", "198.18.1.0/24")).await,
        Err(Error::AlreadyExists { .. })
    ));
    let got = ds.get(&key).await.unwrap();
    assert_eq!(revision_of(&got), Some(rev1));
    assert_eq!(spec_cidr(&got), "198.18.0.0/24");

    let updated = ds.update(&with_cidr(&got, "198.18.2.0/24")).await.unwrap();
    let rev2 = revision_of(&updated).unwrap();
    assert!(rev2 > rev1);
    // A second writer holding the old revision loses.
    match ds.update(&with_cidr(&got, "198.18.3.0/24")).await {
        Err(Error::Conflict { expected, .. }) => assert_eq!(expected, rev1),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(spec_cidr(&ds.get(&key).await.unwrap()), "198.18.2.0/24");
    // An update needs a revision.
    let mut no_rev = updated.clone();
    no_rev.metadata_mut().resource_version = None;
    assert!(matches!(
        ds.update(&no_rev).await,
        Err(Error::Invalid { .. })
    ));
    // Guarded delete.
    assert!(matches!(
        ds.delete(&key, Some(rev1)).await,
        Err(Error::Conflict { .. })
    ));
    ds.delete(&key, Some(rev2)).await.unwrap();
    assert!(matches!(
        ds.delete(&key, None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        ds.update(&updated).await,
        Err(Error::NotFound { .. })
    ));
}

async fn validation_on_every_write(h: Harness) {
    let ds = &h.ds;
    let mut bad = pool("bad", "198.18.0.0/24");
    if let Resource::IPPool(p) = &mut bad {
        p.spec.block_size = Some(40);
    }
    match ds.create(&bad).await {
        Err(Error::Invalid { errors, .. }) => {
            assert!(errors.has_path("spec.blockSize"), "{errors}")
        }
        other => panic!("{other:?}"),
    }
    let good = ds.create(&pool("good", "198.18.0.0/24")).await.unwrap();
    let mut worse = good.clone();
    if let Resource::IPPool(p) = &mut worse {
        p.spec.cidr = "198.18.0.1/24".into();
    }
    assert!(matches!(
        ds.update(&worse).await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(ds.apply(&worse).await, Err(Error::Invalid { .. })));
    assert!(matches!(
        ds.get(&Key::new(Kind::IPPool, "bad")).await,
        Err(Error::NotFound { .. })
    ));
}

async fn list_by_namespace_and_labels(h: Harness) {
    let ds = &h.ds;
    for (ns, name) in [("a", "p1"), ("a", "p2"), ("b", "p1")] {
        ds.create(&policy(ns, name)).await.unwrap();
    }
    ds.create(&pool("x", "198.18.0.0/24")).await.unwrap();
    let mut other = pool("y", "198.18.1.0/24");
    other.metadata_mut().labels = Some([("zone".to_string(), "b".to_string())].into());
    ds.create(&other).await.unwrap();

    assert_eq!(
        ds.list(Kind::NetworkPolicy, None, None)
            .await
            .unwrap()
            .len(),
        3
    );
    let in_a = ds.list(Kind::NetworkPolicy, Some("a"), None).await.unwrap();
    assert_eq!(
        in_a.iter().map(|r| r.name()).collect::<Vec<_>>(),
        vec!["p1", "p2"]
    );
    let sel = Selector::parse("zone == 'b'").unwrap();
    let zb = ds.list(Kind::IPPool, None, Some(&sel)).await.unwrap();
    assert_eq!(zb.iter().map(|r| r.name()).collect::<Vec<_>>(), vec!["y"]);
    // A namespaced create without a namespace is refused.
    let mut nons = policy("a", "p3");
    nons.metadata_mut().namespace = None;
    assert!(matches!(ds.create(&nons).await, Err(Error::Invalid { .. })));
    // Kinds do not leak into each other.
    assert_eq!(ds.list(Kind::BGPPeer, None, None).await.unwrap().len(), 0);
}

async fn apply_creates_then_replaces(h: Harness) {
    let ds = &h.ds;
    let a = ds.apply(&pool("a", "198.18.0.0/24")).await.unwrap();
    let b = ds.apply(&pool("a", "198.18.5.0/24")).await.unwrap();
    assert!(revision_of(&b) > revision_of(&a));
    assert_eq!(
        spec_cidr(&ds.get(&Key::new(Kind::IPPool, "a")).await.unwrap()),
        "198.18.5.0/24"
    );
}

async fn watch_lists_syncs_and_follows(h: Harness) {
    let ds = &h.ds;
    ds.create(&pool("a", "198.18.0.0/24")).await.unwrap();
    ds.create(&pool("b", "198.18.1.0/24")).await.unwrap();
    ds.create(&policy("ns", "ignored")).await.unwrap();
    let mut w = ds.watch(Kind::IPPool, None);
    let mut names = Vec::new();
    let synced_at = loop {
        match next(&mut w).await {
            WatchEvent::Added(r) => names.push(r.name().to_string()),
            WatchEvent::InSync(rev) => break rev,
            other => panic!("{other:?}"),
        }
    };
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
    let c = ds.create(&pool("c", "198.18.2.0/24")).await.unwrap();
    let c2 = ds.update(&with_cidr(&c, "198.18.3.0/24")).await.unwrap();
    ds.create(&policy("ns", "also-ignored")).await.unwrap();
    ds.delete(&Key::new(Kind::IPPool, "a"), None).await.unwrap();
    match next(&mut w).await {
        WatchEvent::Added(r) => {
            assert_eq!(r.name(), "c");
            assert!(revision_of(&r).unwrap() > synced_at);
        }
        other => panic!("{other:?}"),
    }
    match next(&mut w).await {
        WatchEvent::Modified(r) => assert_eq!(revision_of(&r), revision_of(&c2)),
        other => panic!("{other:?}"),
    }
    match next(&mut w).await {
        WatchEvent::Deleted(k, rev) => {
            assert_eq!(k, Key::new(Kind::IPPool, "a"));
            assert!(rev > revision_of(&c2).unwrap() || rev == 0);
        }
        other => panic!("{other:?}"),
    }
}

async fn watch_resumes_from_a_revision(h: Harness) {
    let ds = &h.ds;
    let a = ds.create(&pool("a", "198.18.0.0/24")).await.unwrap();
    ds.create(&pool("b", "198.18.1.0/24")).await.unwrap();
    let mut w = ds.watch(Kind::IPPool, revision_of(&a));
    match next(&mut w).await {
        WatchEvent::Added(r) => assert_eq!(r.name(), "b"),
        other => panic!("{other:?}"),
    }
}

async fn watch_relists_after_compaction(h: Harness) {
    let ds = &h.ds;
    let a = ds.create(&pool("a", "198.18.0.0/24")).await.unwrap();
    let a2 = ds.update(&with_cidr(&a, "198.18.9.0/24")).await.unwrap();
    let b = ds.create(&pool("b", "198.18.1.0/24")).await.unwrap();
    (h.compact)(revision_of(&b).unwrap()).await;
    // Resuming from before the compaction point: told to resync, then the full state.
    let mut w = ds.watch(Kind::IPPool, revision_of(&a));
    assert_eq!(next(&mut w).await, WatchEvent::Resync);
    let mut names = Vec::new();
    loop {
        match next(&mut w).await {
            WatchEvent::Added(r) => names.push((r.name().to_string(), revision_of(&r))),
            WatchEvent::InSync(_) => break,
            other => panic!("{other:?}"),
        }
    }
    names.sort();
    assert_eq!(
        names,
        vec![
            ("a".to_string(), revision_of(&a2)),
            ("b".to_string(), revision_of(&b))
        ]
    );
}

/// The backend's change streams break every few events; the watch must still deliver every
/// change exactly once, in order.
async fn watch_survives_disconnects(h: Harness) {
    let flaky = Arc::new(flaky::Flaky::new(h.ds.backend().clone(), 3));
    let ds = Datastore::new(flaky.clone());
    let mut w = ds.watch(Kind::IPPool, None);
    assert!(matches!(next(&mut w).await, WatchEvent::InSync(_)));
    let mut expected = Vec::new();
    for i in 0..20 {
        let r = ds
            .create(&pool(&format!("p{i}"), &format!("198.18.{i}.0/24")))
            .await
            .unwrap();
        expected.push(revision_of(&r).unwrap());
    }
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        match next(&mut w).await {
            WatchEvent::Added(r) => seen.push(revision_of(&r).unwrap()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, expected);
    assert!(
        flaky.breaks() >= 5,
        "the stream was cut only {} times",
        flaky.breaks()
    );
    // Nothing more arrives: no duplicates.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), w.next())
            .await
            .is_err()
    );
}

async fn concurrent_cas_loses_nothing(h: Harness) {
    use brindle_datastore::{RetryPolicy, retry_on_conflict};
    let ds = h.ds.clone();
    let counter = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPAMHandle",
        "metadata": {"name": "counter"}, "spec": {"handleID": "counter", "block": {"198.18.0.0/26": 0}}}))
    .unwrap();
    ds.create(&counter).await.unwrap();
    let key = Key::new(Kind::IPAMHandle, "counter");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ds = ds.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                retry_on_conflict(
                    &RetryPolicy {
                        max_attempts: 1000,
                        ..RetryPolicy::default()
                    },
                    "counter",
                    || async {
                        let mut r = ds.get(&key).await?;
                        if let Resource::IPAMHandle(hd) = &mut r {
                            *hd.spec.block.get_mut("198.18.0.0/26").unwrap() += 1;
                        }
                        ds.update(&r).await
                    },
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let Resource::IPAMHandle(hd) = ds.get(&key).await.unwrap() else {
        unreachable!()
    };
    assert_eq!(hd.spec.block["198.18.0.0/26"], 200);
}

/// An object that does not decode (say, written by a newer version) is skipped by list and
/// watch, and reported; every other object of its kind is still there.
async fn undecodable_objects_are_skipped(h: Harness) {
    let ds = &h.ds;
    ds.create(&pool("good", "198.18.0.0/24")).await.unwrap();
    let bad = Key::new(Kind::IPPool, "from-the-future");
    ds.backend()
        .create(
            &bad,
            &serde_json::json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
                "metadata": {"name": "from-the-future"},
                "spec": {"cidr": "198.18.1.0/24", "aFieldFromTheFuture": true}}),
        )
        .await
        .unwrap();
    let names: Vec<String> = ds
        .list(Kind::IPPool, None, None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(names, ["good"]);
    let mut w = ds.watch(Kind::IPPool, None);
    assert!(matches!(next(&mut w).await, WatchEvent::Added(r) if r.name() == "good"));
    assert!(matches!(next(&mut w).await, WatchEvent::InSync(_)));
    // The watch moves on past it: a later change still arrives.
    ds.create(&pool("later", "198.18.2.0/24")).await.unwrap();
    assert!(matches!(next(&mut w).await, WatchEvent::Added(r) if r.name() == "later"));
}

/// Multi-object transactions: all or nothing, the failing write named, and a watch sees every
/// key of a transaction even when they share one revision (etcd).
async fn transactions_are_all_or_nothing(h: Harness) {
    let ds = &h.ds;
    assert!(ds.transactions());
    let a = ds.create(&pool("a", "198.18.0.0/24")).await.unwrap();
    let mut w = ds.watch(Kind::IPPool, None);
    assert!(matches!(next(&mut w).await, WatchEvent::Added(_)));
    assert!(matches!(next(&mut w).await, WatchEvent::InSync(_)));

    // One stale precondition: nothing happens, and the error names that write.
    let stale = with_cidr(&a, "198.18.9.0/24");
    let a2 = ds.update(&with_cidr(&a, "198.18.1.0/24")).await.unwrap();
    let err = ds
        .commit(&[Op::Create(pool("b", "198.18.2.0/24")), Op::Update(stale)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { key, .. } if key.contains("/a")),
        "{err:?}"
    );
    assert!(matches!(
        ds.get(&Key::new(Kind::IPPool, "b")).await,
        Err(Error::NotFound { .. })
    ));
    let err = ds
        .commit(&[Op::Create(pool("a", "198.18.3.0/24"))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    let err = ds
        .commit(&[Op::Delete(Key::new(Kind::IPPool, "zz"), None)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // One key twice is refused before anything is sent.
    assert!(
        ds.commit(&[Op::Update(a2.clone()), Op::Delete(Key::of(&a2), None)])
            .await
            .is_err()
    );

    // All preconditions hold: every write lands.
    let revs = ds
        .commit(&[
            Op::Create(pool("b", "198.18.2.0/24")),
            Op::Update(with_cidr(&a2, "198.18.4.0/24")),
            Op::Create(policy("ns", "p")),
        ])
        .await
        .unwrap();
    assert_eq!(revs.len(), 3);
    assert_eq!(
        spec_cidr(&ds.get(&Key::new(Kind::IPPool, "a")).await.unwrap()),
        "198.18.4.0/24"
    );
    assert_eq!(
        spec_cidr(&ds.get(&Key::new(Kind::IPPool, "b")).await.unwrap()),
        "198.18.2.0/24"
    );
    // The watch sees the first write (the update of a), the transaction's two pool writes.
    let mut seen = Vec::new();
    for _ in 0..3 {
        match next(&mut w).await {
            WatchEvent::Added(r) | WatchEvent::Modified(r) => {
                seen.push((r.name().to_string(), spec_cidr(&r)))
            }
            other => panic!("{other:?}"),
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("a".to_string(), "198.18.1.0/24".to_string()),
            ("a".to_string(), "198.18.4.0/24".to_string()),
            ("b".to_string(), "198.18.2.0/24".to_string())
        ]
    );
}

/// Listing by name prefix reads exactly the objects whose names start with it.
async fn list_by_name_prefix(h: Harness) {
    let ds = &h.ds;
    for (i, n) in ["node-1-a", "node-1-b", "node-10-a", "node-2-a"]
        .iter()
        .enumerate()
    {
        ds.create(&pool(n, &format!("198.18.{i}.0/24")))
            .await
            .unwrap();
    }
    ds.create(&policy("ns", "node-1-x")).await.unwrap();
    let names = |v: Vec<Resource>| v.iter().map(|r| r.name().to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(ds.list_prefix(Kind::IPPool, "node-1-").await.unwrap()),
        ["node-1-a", "node-1-b"]
    );
    assert_eq!(
        names(ds.list_prefix(Kind::IPPool, "node-1").await.unwrap()),
        ["node-1-a", "node-1-b", "node-10-a"]
    );
    assert!(
        ds.list_prefix(Kind::IPPool, "zzz")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ds.list_prefix(Kind::IPPool, "").await.unwrap().len(), 4);
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory_backend {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(super::memory().await).await } )*
        }
        mod sqlite_backend {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(super::sqlite().await).await } )*
        }
        mod etcd_backend {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(super::etcd().await).await } )*
        }
    };
}

conformance!(
    crud_and_errors,
    validation_on_every_write,
    list_by_namespace_and_labels,
    apply_creates_then_replaces,
    watch_lists_syncs_and_follows,
    watch_resumes_from_a_revision,
    watch_relists_after_compaction,
    watch_survives_disconnects,
    concurrent_cas_loses_nothing,
    undecodable_objects_are_skipped,
    transactions_are_all_or_nothing,
    list_by_name_prefix,
);

#[tokio::test]
async fn unreachable_etcd_fails_in_bounded_time_naming_the_endpoint() {
    let port = brindle_tests::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let err = EtcdBackend::connect(std::slice::from_ref(&url), "/x/")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_then_recovery() {
    let mut server = brindle_tests::etcd::EtcdServer::start();
    let ds = Datastore::new(Arc::new(
        EtcdBackend::connect(&[server.url()], "/brindle-test/")
            .await
            .unwrap(),
    ));
    ds.create(&pool("a", "198.18.0.0/24")).await.unwrap();
    let mut w = ds.watch(Kind::IPPool, None);
    assert!(matches!(next(&mut w).await, WatchEvent::Added(_)));
    assert!(matches!(next(&mut w).await, WatchEvent::InSync(_)));
    server.stop();
    let started = std::time::Instant::now();
    let err = ds.get(&Key::new(Kind::IPPool, "a")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains(&server.url()), "{err}");
    server.restart();
    // The client reconnects by itself; the watch resumes and sees the next write once.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match ds.create(&pool("b", "198.18.1.0/24")).await {
            Ok(_) | Err(Error::AlreadyExists { .. }) => break,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "etcd never came back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    match next(&mut w).await {
        WatchEvent::Added(r) => assert_eq!(r.name(), "b"),
        other => panic!("{other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), w.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unknown_datastore_strings_are_refused() {
    let err = brindle_datastore::open("mysql:whatever").await.unwrap_err();
    assert!(err.to_string().contains("sqlite:PATH"), "{err}");
    let ds = brindle_datastore::open("memory").await.unwrap();
    assert_eq!(ds.endpoint(), "memory");
}
