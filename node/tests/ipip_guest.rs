//! IPIP end to end. This machine's kernel has no ipip module, so the case runs inside a QEMU
//! guest booting Debian's stock kernel (TCG, no network link to the host): two `brindle-node`s
//! in namespaces, an `ipipMode: Always` pool, a pod on each node wired by `brindle-cni`, a ping
//! between them through `tunl0`, and the far node's tunl0 receive counter checked. The script is
//! `tests/ipip-vm/run.sh`; the guest's `/init` is `tests/ipip-vm/init`. Needs root,
//! qemu-system-x86_64, python3, strip, and apt-get (to download the kernel once).

use std::process::Command;

#[test]
fn pods_ping_through_tunl0_in_a_guest_with_the_ipip_module() {
    let bins = brindle_tests::workspace_bin("brindle-node");
    let dir = bins.parent().unwrap();
    for b in ["brindle-cni", "brindlectl"] {
        brindle_tests::workspace_bin(b);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/ipip-vm/run.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(dir)
        .output()
        .expect("run tests/ipip-vm/run.sh");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the IPIP guest did not pass:\n{text}");
    assert!(text.contains("BRINDLE-IPIP: PASS"), "{text}");
}
