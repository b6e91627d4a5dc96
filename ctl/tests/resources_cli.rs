//! `brindlectl apply / get / delete` end to end against sqlite and a real etcd.

use std::process::Command;

fn brindlectl(datastore: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brindlectl"))
        .args(args)
        .env("BRINDLE_DATASTORE", datastore)
        .output()
        .expect("run brindlectl");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples");

fn exercise(ds: &str) {
    let (code, out) = brindlectl(ds, &["apply", "-f", EXAMPLES]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("IPPool/default-ipv4-ippool created"), "{out}");
    let (code, out) = brindlectl(ds, &["apply", "-f", EXAMPLES]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("IPPool/default-ipv4-ippool unchanged"),
        "{out}"
    );

    let (code, out) = brindlectl(ds, &["get", "ippools"]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("NAME") && lines[0].contains("CIDR") && lines[0].contains("BLOCK"),
        "{out}"
    );
    assert!(
        out.contains("default-ipv4-ippool") && out.contains("198.18.0.0/16"),
        "{out}"
    );
    assert!(
        out.contains("2001:db8:42::/56") && out.contains("122"),
        "{out}"
    );

    let (code, out) = brindlectl(ds, &["get", "ippool", "default-ipv6-ippool", "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["spec"]["cidr"], "2001:db8:42::/56");
    assert!(v["metadata"]["resourceVersion"].as_str().is_some());

    let (code, out) = brindlectl(ds, &["get", "networkpolicies", "-n", "shop", "-o", "yaml"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("knp.default.db-allow-api"), "{out}");

    // An invalid manifest writes nothing.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: brindle.dev/v1\nkind: IPPool\nmetadata: {name: new}\nspec: {cidr: 198.19.0.0/16}\n---\n\
                          apiVersion: brindle.dev/v1\nkind: IPPool\nmetadata: {name: worse}\nspec: {cidr: 198.19.0.1/16}\n").unwrap();
    let (code, out) = brindlectl(ds, &["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let (_, out) = brindlectl(ds, &["get", "ippool", "new"]);
    assert!(out.contains("not found"), "{out}");

    let (code, out) = brindlectl(ds, &["create", "-f", &format!("{EXAMPLES}/ippools.yaml")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("already exists"), "{out}");

    let (code, out) = brindlectl(ds, &["delete", "ippool", "default-ipv6-ippool"]);
    assert_eq!(code, 0, "{out}");
    let (_, out) = brindlectl(ds, &["get", "ippools"]);
    assert!(!out.contains("default-ipv6-ippool"), "{out}");
    let (code, out) = brindlectl(
        ds,
        &["delete", "-f", &format!("{EXAMPLES}/bgppeer-tor.yaml")],
    );
    assert_eq!(code, 0, "{out}");
    let (_, out) = brindlectl(ds, &["get", "bgppeers"]);
    assert!(out.contains("No bgppeers found"), "{out}");
    let (code, out) = brindlectl(ds, &["get", "widgets"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown kind"), "{out}");
}

#[test]
fn against_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&format!("sqlite:{}", dir.path().join("x.db").display()));
}

#[test]
fn against_etcd() {
    let server = brindle_tests::etcd::EtcdServer::start();
    exercise(&format!("etcd:{}", server.url()));
}

#[test]
fn unreachable_datastore_names_the_endpoint() {
    let url = format!("http://127.0.0.1:{}", brindle_tests::free_port());
    let (code, out) = brindlectl(&format!("etcd:{url}"), &["get", "ippools"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&url), "{out}");
}
