//! `brindlectl ipam show / check / release` against a sqlite store filled by the allocator.

use std::process::Command;

use brindle_crds::document::resource_from_value;
use brindle_ipam::{AssignArgs, Ipam};
use serde_json::json;

fn brindlectl(ds: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brindlectl"))
        .args(args)
        .env("BRINDLE_DATASTORE", ds)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_check_release() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("sqlite:{}", dir.path().join("ipam.db").display());
    let ds = brindle_datastore::open(&spec).await.unwrap();
    for (name, cidr, bs) in [
        ("pods-v4", "198.18.0.0/24", 28),
        ("pods-v6", "2001:db8:7::/120", 124),
    ] {
        let p = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
            "metadata": {"name": name}, "spec": {"cidr": cidr, "blockSize": bs}}))
        .unwrap();
        ds.create(&p).await.unwrap();
    }
    for n in ["node-a", "node-b", "node-c"] {
        let node = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "Node",
            "metadata": {"name": n}, "spec": {"bgp": {"ipv4Address": "198.19.0.1/24"}}}))
        .unwrap();
        ds.create(&node).await.unwrap();
    }
    let ipam = Ipam::new(ds.clone());
    let mut first = None;
    for (i, n) in ["node-a", "node-a", "node-a", "node-b", "node-c"]
        .iter()
        .enumerate()
    {
        let a = ipam
            .auto_assign(&AssignArgs {
                handle: format!("net.c{i}"),
                node: n.to_string(),
                num_v4: 1,
                num_v6: 1,
                timestamp: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        first.get_or_insert(a.v4[0]);
    }
    let (code, out) = brindlectl(&spec, &["ipam", "show"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pods-v4") && out.contains("198.18.0.0/24") && out.contains("3 of 16"),
        "{out}"
    );
    assert!(
        out.contains("pods-v6") && out.contains("2001:db8:7::/120"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("node-a") && l.contains(" 2 ") && l.contains(" 6 ")),
        "{out}"
    );

    // Every workload but c4 is live: c4's two addresses are leaks.
    let live = dir.path().join("live");
    std::fs::write(&live, "# live handles\nnet.c0\nnet.c1\nnet.c2\nnet.c3\n").unwrap();
    let (code, out) = brindlectl(
        &spec,
        &["ipam", "check", "--live-handles", live.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("leaked:").count(), 2, "{out}");
    assert!(out.contains("handle=net.c4"), "{out}");
    let (code, out) = brindlectl(
        &spec,
        &[
            "ipam",
            "check",
            "--live-handles",
            live.to_str().unwrap(),
            "--gc",
            "--grace",
            "0s",
        ],
    );
    // Without --yes GC only says what it would free.
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("gc: would free").count(), 2, "{out}");
    assert!(out.contains("dry run, nothing freed"), "{out}");
    let (code, out) = brindlectl(
        &spec,
        &["ipam", "check", "--live-handles", live.to_str().unwrap()],
    );
    assert_eq!(code, 1, "the dry run freed something: {out}");
    let (code, out) = brindlectl(
        &spec,
        &[
            "ipam",
            "check",
            "--live-handles",
            live.to_str().unwrap(),
            "--gc",
            "--yes",
            "--grace",
            "0s",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("gc: released 2 addresses"), "{out}");
    let (code, out) = brindlectl(
        &spec,
        &["ipam", "check", "--live-handles", live.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: no leaks"), "{out}");

    let ip = first.unwrap().to_string();
    let (code, out) = brindlectl(&spec, &["ipam", "release", "--ip", &ip]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{ip} released")), "{out}");
    let (_, out) = brindlectl(&spec, &["ipam", "release", "--ip", &ip]);
    assert!(out.contains("was not allocated"), "{out}");
    let (code, out) = brindlectl(&spec, &["ipam", "release", "--handle", "net.c1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("released 2 address(es)"), "{out}");
}

/// With no Node objects at all, GC must not call every allocation a missing node's: it refuses,
/// and an allocation whose handle is live survives, with its block and affinity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_refuses_without_nodes_and_keeps_live_handles() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("sqlite:{}", dir.path().join("ipam.db").display());
    let ds = brindle_datastore::open(&spec).await.unwrap();
    let p = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "IPPool",
        "metadata": {"name": "pods"}, "spec": {"cidr": "198.18.0.0/24", "blockSize": 28}}))
    .unwrap();
    ds.create(&p).await.unwrap();
    let ipam = Ipam::new(ds.clone());
    let got = ipam
        .auto_assign(&AssignArgs {
            handle: "net.live".into(),
            node: "node-a".into(),
            num_v4: 1,
            timestamp: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let live = dir.path().join("live");
    std::fs::write(&live, "net.live\n").unwrap();
    let args = [
        "ipam",
        "check",
        "--live-handles",
        live.to_str().unwrap(),
        "--gc",
        "--yes",
        "--missing-nodes-now",
        "--grace",
        "0s",
    ];
    let (code, out) = brindlectl(&spec, &args);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("refus") && out.contains("no Node"), "{out}");
    assert_eq!(ipam.node_blocks("node-a").await.unwrap().len(), 1);
    // Once another node exists the view is trusted, but node-a's live handle still protects it.
    let node = resource_from_value(json!({"apiVersion": "brindle.dev/v1", "kind": "Node",
        "metadata": {"name": "node-b"}, "spec": {"bgp": {"ipv4Address": "198.19.0.2/24"}}}))
    .unwrap();
    ds.create(&node).await.unwrap();
    let (code, out) = brindlectl(&spec, &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("gc: released 0 addresses"), "{out}");
    assert_eq!(ipam.node_blocks("node-a").await.unwrap().len(), 1);
    assert_eq!(ipam.release_ips(&got.v4).await.unwrap(), got.v4);
}
