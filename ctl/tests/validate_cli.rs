//! `brindlectl validate` end to end: the examples pass, bad documents fail with exit code 1.

use std::process::Command;

fn brindlectl(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brindlectl"))
        .args(args)
        .output()
        .expect("run");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn examples_validate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples");
    let (code, out) = brindlectl(&["validate", "-f", dir]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().count() >= 5, "{out}");
    assert!(out.lines().all(|l| l.ends_with(": ok")), "{out}");
    assert!(
        out.contains("NetworkPolicy/shop/knp.default.db-allow-api: ok"),
        "{out}"
    );
}

#[test]
fn invalid_documents_fail_with_paths() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "apiVersion: brindle.dev/v1\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 198.18.0.0/16}\n---\n\
         apiVersion: brindle.dev/v1\nkind: IPPool\nmetadata: {name: b}\nspec: {cidr: 198.18.0.0/24, ipipMode: Always, vxlanMode: Always}\n---\n\
         apiVersion: brindle.dev/v1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 198.19.0.1}\n",
    )
    .unwrap();
    let (code, out) = brindlectl(&["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("IPPool/a: ok"), "{out}");
    assert!(out.contains("IPPool/b: invalid: spec.vxlanMode"), "{out}");
    assert!(
        out.contains("BGPPeer/p: invalid: spec.asNumber: required"),
        "{out}"
    );
    // a and b overlap once b is otherwise fixed; here b is invalid so it is not compared.
}

#[test]
fn overlapping_pools_fail() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pools.json");
    std::fs::write(
        &f,
        r#"[{"apiVersion":"brindle.dev/v1","kind":"IPPool","metadata":{"name":"a"},"spec":{"cidr":"198.18.0.0/16"}},
            {"apiVersion":"brindle.dev/v1","kind":"IPPool","metadata":{"name":"b"},"spec":{"cidr":"198.18.4.0/24"}}]"#,
    )
    .unwrap();
    let (code, out) = brindlectl(&["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("IPPool/b: spec.cidr: 198.18.4.0/24 overlaps IPPool a"),
        "{out}"
    );
}

#[test]
fn malformed_yaml_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("broken.yaml");
    std::fs::write(&f, "kind: IPPool\nmetadata:\n  name: [x\n").unwrap();
    let (code, out) = brindlectl(&["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 3, column 9"), "{out}");
}

#[test]
fn missing_file_is_an_error() {
    let (code, out) = brindlectl(&["validate", "-f", "/nonexistent/brindle.yaml"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no such file"), "{out}");
}
