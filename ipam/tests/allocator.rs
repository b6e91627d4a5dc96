//! The allocator against sqlite and a real etcd: affinity, borrowing, strictAffinity,
//! maxBlocksPerHost, pool annotations, node selectors, fixed IPs, reservations, dual stack,
//! idempotent release, check and GC.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use brindle_crds::document::resource_from_value;
use brindle_crds::{Kind, Resource};
use brindle_datastore::{Datastore, Key};
use brindle_ipam::{AssignArgs, Error, Ipam, LiveState};
use ipnetwork::IpNetwork;
use serde_json::{Value, json};

struct Env {
    ipam: Ipam,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn sqlite() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ds = brindle_datastore::open(&format!("sqlite:{}", dir.path().join("ipam.db").display()))
        .await
        .unwrap();
    Env {
        ipam: Ipam::new(ds),
        _guard: Box::new(dir),
    }
}

async fn etcd() -> Env {
    let server = brindle_tests::etcd::EtcdServer::start();
    let ds = brindle_datastore::open(&format!("etcd:{}", server.url()))
        .await
        .unwrap();
    Env {
        ipam: Ipam::new(ds),
        _guard: Box::new(server),
    }
}

async fn apply(ds: &Datastore, v: Value) {
    ds.apply(&resource_from_value(v).unwrap()).await.unwrap();
}

async fn pool(ds: &Datastore, name: &str, cidr: &str, block: u8, extra: Value) {
    let mut spec = json!({"cidr": cidr, "blockSize": block});
    if let Value::Object(m) = extra {
        spec.as_object_mut().unwrap().extend(m);
    }
    apply(ds, json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": spec})).await;
}

async fn node(ds: &Datastore, name: &str, labels: Value) {
    apply(ds, json!({"apiVersion": "brindle.dev/v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "spec": {"bgp": {"ipv4Address": "198.19.0.1/24"}}}))
    .await;
}

async fn ipam_config(ds: &Datastore, strict: bool, max_blocks: Option<u32>) {
    let mut spec = json!({"strictAffinity": strict});
    if let Some(m) = max_blocks {
        spec["maxBlocksPerHost"] = m.into();
    }
    apply(ds, json!({"apiVersion": "brindle.dev/v1", "kind": "IPAMConfiguration", "metadata": {"name": "default"}, "spec": spec})).await;
}

fn args(handle: &str, node: &str) -> AssignArgs {
    AssignArgs {
        handle: handle.into(),
        node: node.into(),
        num_v4: 1,
        timestamp: 1_000,
        ..Default::default()
    }
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

async fn assign_release_idempotent(e: Env) {
    let ds = e.ipam.datastore().clone();
    pool(&ds, "p4", "198.18.0.0/24", 28, json!({})).await;
    let got = e.ipam.auto_assign(&args("net.c1", "n1")).await.unwrap();
    assert_eq!(got.v4.len(), 1);
    assert!(net("198.18.0.0/24").contains(got.v4[0]));
    let blocks = e.ipam.node_blocks("n1").await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert!(
        blocks[0].contains(got.v4[0]),
        "allocated from the node's own block"
    );
    // The affinity is confirmed and the block carries host:n1.
    let Resource::IPAMBlock(b) = ds
        .get(&Key::new(
            Kind::IPAMBlock,
            brindle_ipam::block_name(&blocks[0]),
        ))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(b.spec.affinity.as_deref(), Some("host:n1"));
    let second = e.ipam.auto_assign(&args("net.c2", "n1")).await.unwrap();
    assert!(blocks[0].contains(second.v4[0]));
    assert_ne!(second.v4[0], got.v4[0]);

    assert_eq!(e.ipam.release_by_handle("net.c1").await.unwrap(), got.v4);
    assert!(
        e.ipam.release_by_handle("net.c1").await.unwrap().is_empty(),
        "second release is a no-op"
    );
    assert!(
        e.ipam
            .release_by_handle("net.never-existed")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(e.ipam.release_ips(&second.v4).await.unwrap(), second.v4);
    assert!(e.ipam.release_ips(&second.v4).await.unwrap().is_empty());
    assert!(
        e.ipam
            .release_ips(&["203.0.113.1".parse().unwrap()])
            .await
            .unwrap()
            .is_empty(),
        "outside every pool"
    );
    // Handles are gone once empty.
    assert!(
        ds.list(Kind::IPAMHandle, None, None)
            .await
            .unwrap()
            .is_empty()
    );
    let report = e
        .ipam
        .check(
            &LiveState {
                nodes: Some(["n1".to_string()].into()),
                handles: Some(BTreeSet::new()),
                ..Default::default()
            },
            2_000,
        )
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

async fn dual_stack(e: Env) {
    let ds = e.ipam.datastore().clone();
    pool(&ds, "p4", "198.18.0.0/24", 28, json!({})).await;
    pool(&ds, "p6", "2001:db8:1::/120", 124, json!({})).await;
    let mut a = args("net.dual", "n1");
    a.num_v6 = 1;
    let got = e.ipam.auto_assign(&a).await.unwrap();
    assert_eq!((got.v4.len(), got.v6.len()), (1, 1));
    assert!(got.v6[0].is_ipv6() && net("2001:db8:1::/120").contains(got.v6[0]));
    let freed = e.ipam.release_by_handle("net.dual").await.unwrap();
    assert_eq!(freed.len(), 2);
    // No IPv6 pool for a v6 request: all or nothing, the v4 address is given back.
    ds.delete(&Key::new(Kind::IPPool, "p6"), None)
        .await
        .unwrap();
    match e.ipam.auto_assign(&a).await {
        Err(Error::NoPool { family: 6, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.ipam
            .check(&LiveState::default(), 1_000)
            .await
            .unwrap()
            .allocations,
        0
    );
}

async fn strict_affinity_and_max_blocks(e: Env) {
    let ds = e.ipam.datastore().clone();
    // 4 blocks of 16.
    pool(&ds, "small", "198.18.0.0/26", 28, json!({})).await;
    ipam_config(&ds, true, Some(1)).await;
    e.ipam.auto_assign(&args("net.b0", "nb")).await.unwrap();
    for i in 0..16 {
        e.ipam
            .auto_assign(&args(&format!("net.a{i}"), "na"))
            .await
            .unwrap();
    }
    match e.ipam.auto_assign(&args("net.a16", "na")).await {
        Err(Error::Exhausted {
            pools,
            node,
            reason,
            ..
        }) => {
            assert_eq!(pools, vec!["small"]);
            assert_eq!(node, "na");
            assert!(
                reason.contains("maxBlocksPerHost=1") && reason.contains("strictAffinity"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // strictAffinity off: borrow from nb's block.
    ipam_config(&ds, false, Some(1)).await;
    let got = e.ipam.auto_assign(&args("net.a16", "na")).await.unwrap();
    let nb_block = e.ipam.node_blocks("nb").await.unwrap()[0];
    assert!(
        nb_block.contains(got.v4[0]),
        "borrowed {} from {nb_block}",
        got.v4[0]
    );
    // Unlimited blocks: the node takes the remaining blocks.
    ipam_config(&ds, true, None).await;
    let mut n = 0;
    loop {
        match e.ipam.auto_assign(&args(&format!("net.x{n}"), "na")).await {
            Ok(_) => n += 1,
            Err(Error::Exhausted { reason, .. }) => {
                assert!(reason.contains("no free block left"), "{reason}");
                break;
            }
            Err(other) => panic!("{other}"),
        }
        assert!(n < 64, "runaway");
    }
    assert_eq!(n, 32, "two more blocks of 16");
    assert_eq!(e.ipam.node_blocks("na").await.unwrap().len(), 3);
}

async fn pool_selection(e: Env) {
    let ds = e.ipam.datastore().clone();
    pool(
        &ds,
        "rack-a",
        "198.18.0.0/24",
        28,
        json!({"nodeSelector": "rack == 'a'"}),
    )
    .await;
    pool(
        &ds,
        "manual",
        "198.18.1.0/24",
        28,
        json!({"assignmentMode": "Manual"}),
    )
    .await;
    pool(&ds, "off", "198.18.2.0/24", 28, json!({"disabled": true})).await;
    node(&ds, "na", json!({"rack": "a"})).await;
    node(&ds, "nb", json!({"rack": "b"})).await;
    let got = e.ipam.auto_assign(&args("net.1", "na")).await.unwrap();
    assert!(
        net("198.18.0.0/24").contains(got.v4[0]),
        "only rack-a is automatic for na"
    );
    match e.ipam.auto_assign(&args("net.2", "nb")).await {
        Err(Error::NoPool { node, reason, .. }) => {
            assert_eq!(node, "nb");
            assert!(reason.contains("nodeSelector"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The ipv4pools annotation, by name and by CIDR.
    let mut a = args("net.3", "nb");
    a.v4_pools = vec!["manual".into()];
    assert!(net("198.18.1.0/24").contains(e.ipam.auto_assign(&a).await.unwrap().v4[0]));
    a.handle = "net.4".into();
    a.v4_pools = vec!["198.18.1.0/24".into()];
    assert!(net("198.18.1.0/24").contains(e.ipam.auto_assign(&a).await.unwrap().v4[0]));
    a.v4_pools = vec!["nope".into()];
    match e.ipam.auto_assign(&a).await {
        Err(Error::NoPool { reason, .. }) => {
            assert!(reason.contains("'nope' does not exist"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    a.v4_pools = vec!["off".into()];
    match e.ipam.auto_assign(&a).await {
        Err(Error::NoPool { reason, .. }) => {
            assert!(reason.contains("off is disabled"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

async fn fixed_ips_and_reservations(e: Env) {
    let ds = e.ipam.datastore().clone();
    pool(&ds, "p4", "198.18.0.0/24", 28, json!({})).await;
    apply(
        &ds,
        json!({"apiVersion": "brindle.dev/v1", "kind": "IPReservation", "metadata": {"name": "r"},
        "spec": {"reservedCIDRs": ["198.18.0.0/29", "198.18.0.200"]}}),
    )
    .await;
    let fixed: IpAddr = "198.18.0.77".parse().unwrap();
    e.ipam
        .assign_ip(fixed, &args("net.fixed", "n1"))
        .await
        .unwrap();
    match e.ipam.assign_ip(fixed, &args("net.other", "n2")).await {
        Err(Error::Address { ip, reason }) => {
            assert_eq!(ip, fixed);
            assert!(
                reason.contains("already allocated") && reason.contains("net.fixed"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        e.ipam
            .assign_ip("198.19.5.5".parse().unwrap(), &args("net.x", "n1"))
            .await,
        Err(Error::Address { .. })
    ));
    match e
        .ipam
        .assign_ip("198.18.0.3".parse().unwrap(), &args("net.x", "n1"))
        .await
    {
        Err(Error::Address { reason, .. }) => assert!(reason.contains("reserved"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Auto-assignment never hands out reserved addresses.
    let reserved = [net("198.18.0.0/29"), net("198.18.0.200/32")];
    for i in 0..40 {
        let got = e
            .ipam
            .auto_assign(&args(&format!("net.r{i}"), "n1"))
            .await
            .unwrap();
        assert!(
            !reserved.iter().any(|r| r.contains(got.v4[0])),
            "{} is reserved",
            got.v4[0]
        );
        assert_ne!(got.v4[0], fixed);
    }
    let report = e.ipam.check(&LiveState::default(), 1_000).await.unwrap();
    assert_eq!(report.allocations, 41);
    assert!(
        report.duplicates.is_empty() && report.handle_mismatches.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        e.ipam.release_by_handle("net.fixed").await.unwrap(),
        vec![fixed]
    );
}

async fn check_and_gc(e: Env) {
    let ds = e.ipam.datastore().clone();
    pool(&ds, "p4", "198.18.0.0/24", 28, json!({})).await;
    let h1 = e.ipam.auto_assign(&args("net.h1", "n1")).await.unwrap();
    e.ipam.auto_assign(&args("net.h2", "n1")).await.unwrap();
    let h3 = e.ipam.auto_assign(&args("net.h3", "n2")).await.unwrap();
    let mut live = LiveState {
        nodes: Some(["n1".to_string()].into()),
        handles: Some(["net.h1".to_string()].into()),
        ..Default::default()
    };
    let report = e.ipam.check(&live, 1_060).await.unwrap();
    let leaked: BTreeMap<String, String> = report
        .leaked
        .iter()
        .map(|l| (l.handle.clone().unwrap(), l.reason.clone()))
        .collect();
    assert_eq!(leaked.len(), 2, "{report:?}");
    assert!(leaked["net.h2"].contains("no live workload"));
    assert!(leaked["net.h3"].contains("node no longer exists"));
    let n2_block = e.ipam.node_blocks("n2").await.unwrap()[0];
    assert_eq!(report.blocks_of_missing_nodes, vec![n2_block.to_string()]);
    assert!(
        report
            .orphaned_affinities
            .iter()
            .any(|a| a.name.starts_with("n2-")),
        "{report:?}"
    );

    // One minute later, a missing node gets the same grace period as any leak: nothing is due.
    let gc = e
        .ipam
        .gc(&live, 1_060, Duration::from_secs(900))
        .await
        .unwrap();
    assert!(gc.released.is_empty(), "{gc:?}");
    assert!(gc.blocks_released.is_empty(), "{gc:?}");
    assert!(gc.affinities_removed.is_empty(), "{gc:?}");
    // Told to free missing nodes at once: only n2's address goes; h2 is within the grace period.
    live.missing_nodes_now = true;
    let gc = e
        .ipam
        .gc(&live, 1_060, Duration::from_secs(900))
        .await
        .unwrap();
    assert_eq!(gc.released, h3.v4);
    assert_eq!(gc.blocks_released, vec![n2_block.to_string()]);
    assert!(gc.affinities_removed.iter().any(|a| a.starts_with("n2-")));
    // Sixteen minutes later h2 goes too.
    let gc = e
        .ipam
        .gc(&live, 1_000 + 16 * 60, Duration::from_secs(900))
        .await
        .unwrap();
    assert_eq!(gc.released.len(), 1);
    let report = e.ipam.check(&live, 2_000).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.allocations, 1);
    assert_eq!(e.ipam.release_by_handle("net.h1").await.unwrap(), h1.v4);
}

/// GC decided to free an address, but before it acted the address was released and handed
/// to a new workload: the new allocation survives (same address, new sequence number).
async fn gc_never_frees_a_reused_address(e: Env) {
    let ds = e.ipam.datastore().clone();
    pool(&ds, "p", "198.18.1.0/28", 28, json!({})).await;
    node(&ds, "n1", json!({})).await;
    let old = e.ipam.auto_assign(&args("net.old", "n1")).await.unwrap();
    let live = LiveState {
        handles: Some(BTreeSet::new()),
        ..Default::default()
    };
    let plan = e
        .ipam
        .gc_plan(&live, 5_000, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(plan.release.len(), 1, "{plan:?}");
    // The pod's own DEL releases it; a new pod gets the same address by asking for it.
    e.ipam.release_by_handle("net.old").await.unwrap();
    e.ipam
        .assign_ip(old.v4[0], &args("net.new", "n1"))
        .await
        .unwrap();
    let gc = e.ipam.gc_apply(&plan, &live, 5_000).await.unwrap();
    assert!(gc.released.is_empty(), "GC freed a re-used address: {gc:?}");
    // Even the same handle re-allocating the address is a different allocation.
    e.ipam.release_by_handle("net.new").await.unwrap();
    e.ipam
        .assign_ip(old.v4[0], &args("net.old", "n1"))
        .await
        .unwrap();
    let gc = e.ipam.gc_apply(&plan, &live, 5_000).await.unwrap();
    assert!(gc.released.is_empty(), "GC freed a re-used address: {gc:?}");
    let report = e.ipam.check(&LiveState::default(), 5_000).await.unwrap();
    assert_eq!(report.allocations, 1);
}

/// Addresses stay releasable by address after their pool is deleted or re-cut.
async fn release_after_pool_changes(e: Env) {
    let ds = e.ipam.datastore().clone();
    pool(&ds, "p", "198.18.2.0/24", 28, json!({})).await;
    let a = e.ipam.auto_assign(&args("net.a", "n1")).await.unwrap();
    let b = e.ipam.auto_assign(&args("net.b", "n1")).await.unwrap();
    // The block size changes: the address's block is no longer where the pool says.
    pool(&ds, "p", "198.18.2.0/24", 26, json!({})).await;
    assert_eq!(e.ipam.release_ips(&a.v4).await.unwrap(), a.v4);
    // The pool goes away altogether.
    ds.delete(&Key::new(Kind::IPPool, "p"), None).await.unwrap();
    assert_eq!(e.ipam.release_ips(&b.v4).await.unwrap(), b.v4);
    let report = e.ipam.check(&LiveState::default(), 1_000).await.unwrap();
    assert_eq!(report.allocations, 0);
    assert!(report.handle_mismatches.is_empty(), "{report:?}");
}

/// The watch-fed cache of pools, reservations, configuration and labels: allocations follow
/// changes to each (within a bounded wait for the watch), and never break safety meanwhile.
async fn cached_view_follows_changes(e: Env) {
    let ds = e.ipam.datastore().clone();
    pool(
        &ds,
        "a",
        "198.18.0.0/24",
        28,
        json!({"nodeSelector": "zone == 'x'"}),
    )
    .await;
    node(&ds, "n1", json!({"zone": "x"})).await;
    let ipam = e.ipam.clone().with_cache();
    let got = ipam.auto_assign(&args("net.c1", "n1")).await.unwrap();
    assert!(net("198.18.0.0/24").contains(got.v4[0]));

    // Within 10 s (bounded), each change shows: a new pool for a relabelled node, a
    // reservation, strictAffinity.
    async fn eventually<F, Fut>(what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..200 {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the cached view never showed {what}");
    }
    pool(
        &ds,
        "b",
        "198.18.1.0/24",
        28,
        json!({"nodeSelector": "zone == 'y'"}),
    )
    .await;
    node(&ds, "n1", json!({"zone": "y"})).await;
    let mut i = 0;
    eventually("pool b for the relabelled node", || {
        i += 1;
        let (ipam, h) = (ipam.clone(), format!("net.c2-{i}"));
        async move {
            let a = ipam.auto_assign(&args(&h, "n1")).await.unwrap();
            net("198.18.1.0/24").contains(a.v4[0])
        }
    })
    .await;
    apply(
        &ds,
        json!({"apiVersion": "brindle.dev/v1", "kind": "IPReservation",
        "metadata": {"name": "r"}, "spec": {"reservedCIDRs": ["198.18.9.0/24"]}}),
    )
    .await;
    eventually("the reservation", || {
        let ipam = ipam.clone();
        async move { ipam.reservations().await.unwrap() == vec![net("198.18.9.0/24")] }
    })
    .await;
    ipam_config(&ds, true, Some(3)).await;
    eventually("strictAffinity", || {
        let ipam = ipam.clone();
        async move { ipam.config().await.unwrap().strict_affinity }
    })
    .await;
    // Every address handed out through the cache is unique and counted by its handle.
    let report = ipam
        .check(
            &LiveState {
                nodes: Some(["n1".to_string()].into()),
                handles: None,
                ..Default::default()
            },
            2_000,
        )
        .await
        .unwrap();
    assert!(report.duplicates.is_empty(), "{report:?}");
}

macro_rules! on_both {
    ($($t:ident),* $(,)?) => {
        mod sqlite_backend { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::sqlite().await).await } )* }
        mod etcd_backend { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::etcd().await).await } )* }
    };
}

on_both!(
    assign_release_idempotent,
    dual_stack,
    strict_affinity_and_max_blocks,
    pool_selection,
    fixed_ips_and_reservations,
    check_and_gc,
    gc_never_frees_a_reused_address,
    release_after_pool_changes,
    cached_view_follows_changes
);
