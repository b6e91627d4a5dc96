//! Calling a CNI plugin as a container runtime does: the configuration on stdin, `CNI_*`
//! variables, run inside the node's network namespace.

use std::io::Write;
use std::process::{Command, Stdio};

/// One plugin call.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The node's network namespace (the plugin runs there).
    pub host_ns: &'a str,
    /// The plugin binary.
    pub bin: &'a str,
    /// Where the plugin finds its delegates (`CNI_PATH`).
    pub cni_path: &'a str,
    /// ADD, DEL, CHECK, ...
    pub command: &'a str,
    /// The container id (empty for VERSION, STATUS, GC).
    pub container: &'a str,
    /// The pod's network namespace name under `/var/run/netns` (None: unset).
    pub netns: Option<&'a str>,
    /// `CNI_ARGS` (empty: unset).
    pub args: &'a str,
    /// More environment (fault injection in tests).
    pub env: &'a [(&'a str, &'a str)],
}

impl Call<'_> {
    /// Runs the plugin with `conf` on stdin: (exit success, stdout, stderr).
    pub fn run(&self, conf: &str) -> (bool, String, String) {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.host_ns, self.bin])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_COMMAND", self.command)
            .env("CNI_PATH", self.cni_path);
        if !self.container.is_empty() {
            c.env("CNI_CONTAINERID", self.container)
                .env("CNI_IFNAME", "eth0");
        }
        if let Some(ns) = self.netns {
            c.env("CNI_NETNS", format!("/var/run/netns/{ns}"));
        }
        if !self.args.is_empty() {
            c.env("CNI_ARGS", self.args);
        }
        c.envs(self.env.iter().copied());
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the plugin");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(conf.as_bytes());
        }
        let out = child.wait_with_output().expect("wait for the plugin");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}
