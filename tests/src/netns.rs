//! Network-namespace fixtures shared by every end-to-end test: namespaces, veth links and
//! bridges, processes (BIRD, FRR, GoBGP or any command) started inside them, kernel route
//! polling.
//!
//! Safety rules: every namespace is named `brtest-<random>-<name>` and created by the test;
//! links are veth pairs created between two test namespaces (never the root namespace);
//! addresses come from 198.18.0.0/15 and 2001:db8::/32; every wait is bounded. [`Lab`]'s
//! Drop kills the processes it started (by PID) and deletes its own namespaces (by name),
//! also when a test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Panic with a clear message unless we are root and every tool is installed.
pub fn require(tools: &[&str]) {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&uid).trim(),
        "0",
        "this test needs root (network namespaces)"
    );
    for t in tools {
        let found = Path::new(t).is_absolute() && Path::new(t).exists()
            || Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
        assert!(
            found,
            "this test needs `{t}` installed (Debian packages: bird2, frr, gobgpd, tcpdump, iproute2, iputils-ping)"
        );
    }
}

/// Run a command; panic with its output on failure; return stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command; return (success, stdout + stderr).
pub fn try_sh(args: &[&str]) -> (bool, String) {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// Poll `f` every 200 ms until it returns `Some`, at most `secs` seconds.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn random_tag() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:05x}{n}", (t ^ (std::process::id() << 12)) & 0xf_ffff)
}

/// A started process.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

/// A test topology: namespaces, links, processes, a scratch directory.
#[derive(Debug)]
pub struct Lab {
    pub tag: String,
    pub namespaces: Vec<String>,
    pub procs: Vec<Proc>,
    pub dir: tempfile::TempDir,
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("brtest-")
            .tempdir()
            .expect("tempdir");
        // FRR daemons drop privileges to the frr user and create sockets here.
        let _ = sh(&["chmod", "777", dir.path().to_str().unwrap_or(".")]);
        Lab {
            tag: random_tag(),
            namespaces: Vec::new(),
            procs: Vec::new(),
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Create namespace `brtest-<tag>-<short>` with loopback up; returns its full name.
    pub fn ns(&mut self, short: &str) -> String {
        let name = format!("brtest-{}-{short}", self.tag);
        sh(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair between two test namespaces, with addresses (CIDR notation; IPv6 without
    /// duplicate address detection).
    pub fn link(
        &self,
        a: &str,
        a_if: &str,
        a_addrs: &[&str],
        b: &str,
        b_if: &str,
        b_addrs: &[&str],
    ) {
        sh(&[
            "ip", "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
            for addr in addrs {
                if addr.contains(':') {
                    sh(&["ip", "-n", ns, "addr", "add", addr, "dev", ifname, "nodad"]);
                } else {
                    sh(&["ip", "-n", ns, "addr", "add", addr, "dev", ifname]);
                }
            }
            sh(&["ip", "-n", ns, "link", "set", ifname, "up"]);
        }
    }

    /// A bridge inside a test namespace (a shared segment for several namespaces).
    pub fn bridge(&self, ns: &str, br: &str, addrs: &[&str]) {
        sh(&["ip", "-n", ns, "link", "add", br, "type", "bridge"]);
        for addr in addrs {
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", br]);
        }
        sh(&["ip", "-n", ns, "link", "set", br, "up"]);
    }

    /// A veth from `other` into the bridge `br` of namespace `ns`.
    pub fn link_to_bridge(
        &self,
        ns: &str,
        br: &str,
        port: &str,
        other: &str,
        other_if: &str,
        addrs: &[&str],
    ) {
        self.link(ns, port, &[], other, other_if, addrs);
        sh(&["ip", "-n", ns, "link", "set", port, "master", br]);
    }

    /// A pod wired by hand into node namespace `node` the way the CNI plugin wires one (for
    /// tests that need pods without the plugin): a new namespace `<short>` with `ip/32` on
    /// `eth0`, the link-local gateway with a permanent neighbour entry, a default route; on the
    /// node a veth `host_if` with the gateway MAC and a `/32` route. Returns the pod namespace.
    pub fn wired_pod(&mut self, node: &str, short: &str, host_if: &str, ip: &str) -> String {
        let pod = self.ns(short);
        self.link(node, host_if, &[], &pod, "eth0", &[&format!("{ip}/32")]);
        let mac = "ee:ee:ee:ee:ee:ee";
        sh(&["ip", "-n", node, "link", "set", host_if, "address", mac]);
        sh(&[
            "ip",
            "-n",
            &pod,
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ]);
        sh(&[
            "ip",
            "-n",
            &pod,
            "neigh",
            "add",
            "169.254.1.1",
            "lladdr",
            mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
        sh(&[
            "ip",
            "-n",
            &pod,
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ]);
        let host_route = format!("{ip}/32");
        sh(&[
            "ip",
            "-n",
            node,
            "route",
            "add",
            &host_route,
            "dev",
            host_if,
            "scope",
            "link",
        ]);
        pod
    }

    /// Enable forwarding in a namespace (its own sysctls only).
    pub fn forwarding(&self, ns: &str) {
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.forwarding=1",
        ]);
    }

    /// Start `args` inside `ns`, output to `<dir>/<name>.log`.
    pub fn spawn(&mut self, ns: &str, name: &str, args: &[&str]) -> usize {
        self.spawn_env(ns, name, args, &[])
    }

    pub fn spawn_env(
        &mut self,
        ns: &str,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> usize {
        let log = self.path(&format!("{name}.log"));
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("log"))
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            log,
        });
        self.procs.len() - 1
    }

    /// SIGKILL a process and reap it.
    pub fn kill(&mut self, idx: usize) {
        let p = &mut self.procs[idx];
        let _ = p.child.kill();
        let _ = p.child.wait();
    }

    /// SIGTERM a process and wait (bounded) for it to exit.
    pub fn terminate(&mut self, idx: usize, secs: u64) -> bool {
        let pid = self.procs[idx].child.id().to_string();
        let _ = try_sh(&["kill", "-TERM", &pid]);
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.procs[idx].child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill(idx);
        false
    }

    pub fn log(&self, idx: usize) -> String {
        fs::read_to_string(&self.procs[idx].log).unwrap_or_default()
    }

    /// Every process log, for failure messages.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| {
                let l = fs::read_to_string(&p.log).unwrap_or_default();
                let tail: Vec<&str> = l.lines().rev().take(40).collect();
                format!(
                    "==== {} ====\n{}\n",
                    p.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    // ---- BIRD -------------------------------------------------------------------------

    /// Start BIRD 2 in `ns` with `conf`; returns the process index.
    pub fn bird(&mut self, ns: &str, name: &str, conf: &str) -> usize {
        let c = self.path(&format!("{name}.conf"));
        fs::write(&c, conf).expect("write bird.conf");
        let sock = self.path(&format!("{name}.ctl"));
        self.spawn(
            ns,
            name,
            &[
                "bird",
                "-f",
                "-c",
                c.to_str().unwrap_or_default(),
                "-s",
                sock.to_str().unwrap_or_default(),
            ],
        )
    }

    pub fn birdc(&self, name: &str, cmd: &str) -> String {
        let sock = self.path(&format!("{name}.ctl"));
        let mut args = vec!["birdc", "-s", sock.to_str().unwrap_or_default()];
        args.extend(cmd.split_whitespace());
        try_sh(&args).1
    }

    /// Wait until BIRD's protocol `proto` is Established.
    pub fn wait_bird_established(&self, name: &str, proto: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.birdc(name, &format!("show protocols {proto}"));
            if out.contains("Established") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for BIRD {name}/{proto}: {out}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // ---- FRR --------------------------------------------------------------------------

    /// Start zebra and bgpd in `ns` with `conf` (a frr.conf); returns bgpd's index.
    pub fn frr(&mut self, ns: &str, name: &str, conf: &str) -> usize {
        let d = self.path(name);
        fs::create_dir_all(&d).expect("frr dir");
        let _ = sh(&["chmod", "777", d.to_str().unwrap_or_default()]);
        fs::write(d.join("frr.conf"), conf).expect("frr.conf");
        fs::write(d.join("vtysh.conf"), "").expect("vtysh.conf");
        fs::write(d.join("zebra.conf"), "hostname zebra\n").expect("zebra.conf");
        let ds = d.to_str().unwrap_or_default().to_string();
        let pathspace = format!("{}-{name}", self.tag);
        for daemon in ["zebra", "bgpd"] {
            let bin = format!("/usr/lib/frr/{daemon}");
            let conf = if daemon == "zebra" {
                format!("{ds}/zebra.conf")
            } else {
                format!("{ds}/frr.conf")
            };
            let pid = format!("{ds}/{daemon}.pid");
            let zs = format!("{ds}/zserv.api");
            self.spawn(
                ns,
                &format!("{name}-{daemon}"),
                &[
                    &bin,
                    "-N",
                    &pathspace,
                    "-f",
                    &conf,
                    "-i",
                    &pid,
                    "-z",
                    &zs,
                    "--vty_socket",
                    &ds,
                    "-u",
                    "frr",
                    "-g",
                    "frr",
                    "-P",
                    "0",
                ],
            );
            if daemon == "zebra" {
                let zs2 = zs.clone();
                wait_for("zebra socket", 10, || {
                    Path::new(&zs2).exists().then_some(())
                });
            }
        }
        self.procs.len() - 1
    }

    pub fn vtysh(&self, name: &str, cmd: &str) -> String {
        let d = self.path(name);
        let ds = d.to_str().unwrap_or_default();
        try_sh(&["vtysh", "--vty_socket", ds, "--config_dir", ds, "-c", cmd]).1
    }

    /// Wait until FRR's neighbor `peer` is Established.
    pub fn wait_frr_established(&self, name: &str, peer: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.vtysh(name, &format!("show bgp neighbors {peer} json"));
            if out.contains("\"bgpState\":\"Established\"") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for FRR {name} neighbor {peer}: {}\n{}",
                out.chars().take(600).collect::<String>(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    // ---- GoBGP ------------------------------------------------------------------------

    /// Start gobgpd in `ns` with a TOML config; returns (index, api port).
    pub fn gobgp(&mut self, ns: &str, name: &str, toml: &str) -> (usize, u16) {
        let c = self.path(&format!("{name}.toml"));
        fs::write(&c, toml).expect("gobgp config");
        let port = 50051;
        let api = format!("127.0.0.1:{port}");
        let idx = self.spawn(
            ns,
            name,
            &[
                "gobgpd",
                "-f",
                c.to_str().unwrap_or_default(),
                "--api-hosts",
                &api,
                "--pprof-disable",
            ],
        );
        (idx, port)
    }

    pub fn gobgp_cli(&self, ns: &str, port: u16, cmd: &str) -> String {
        let p = port.to_string();
        let mut args = vec![
            "ip",
            "netns",
            "exec",
            ns,
            "gobgp",
            "-u",
            "127.0.0.1",
            "-p",
            &p,
        ];
        args.extend(cmd.split_whitespace());
        try_sh(&args).1
    }

    // ---- kernel -----------------------------------------------------------------------

    /// `ip -n ns [-6] route show <args>`.
    pub fn routes(&self, ns: &str, v6: bool, args: &str) -> String {
        let mut a = vec!["ip", "-n", ns];
        if v6 {
            a.push("-6");
        }
        a.extend(["route", "show"]);
        a.extend(args.split_whitespace());
        try_sh(&a).1
    }

    pub fn wait_route(&self, ns: &str, v6: bool, args: &str, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.routes(ns, v6, args);
            if out.contains(needle) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for `{needle}` in `ip -n {ns} route show {args}`:\n{out}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Run `f` on a new thread inside network namespace `ns` (setns is per thread, so this never
/// touches the test's other threads). Sockets `f` creates live in that namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
}
