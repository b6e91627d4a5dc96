//! The speaker's end-to-end fixtures: the shared namespace [`Lab`] (from `brindle-tests`) plus
//! starting `brindle-bgp` in it and reading its status file.

#![allow(dead_code)]

use std::fs;
use std::time::{Duration, Instant};

pub use brindle_bgp_speaker::status::Snapshot;
pub use brindle_tests::netns::*;

/// `brindle-bgp` in a [`Lab`].
pub trait BrindleLab {
    /// Start `brindle-bgp` in `ns` with this YAML; returns the process index.
    fn brindle(&mut self, ns: &str, name: &str, yaml: &str) -> usize;
    /// Start `brindle-bgp` with extra command-line arguments.
    fn brindle_args(&mut self, ns: &str, name: &str, yaml: &str, extra: &[&str]) -> usize;
    /// The last status snapshot `name` wrote.
    fn status(&self, name: &str) -> Option<Snapshot>;
    /// Wait until Brindle `name` reports `peer` Established.
    fn wait_brindle_established(&self, name: &str, peer: &str, secs: u64);
    /// Wait until Brindle `name` has `prefix` in its Loc-RIB from `source`.
    fn wait_brindle_route(&self, name: &str, prefix: &str, source: &str, secs: u64);
}

impl BrindleLab for Lab {
    fn brindle(&mut self, ns: &str, name: &str, yaml: &str) -> usize {
        self.brindle_args(ns, name, yaml, &[])
    }

    fn brindle_args(&mut self, ns: &str, name: &str, yaml: &str, extra: &[&str]) -> usize {
        let cfg = self.path(&format!("{name}.yaml"));
        fs::write(&cfg, yaml).expect("write config");
        let status = self.path(&format!("{name}.status.json"));
        let _ = fs::remove_file(&status);
        let bin = env!("CARGO_BIN_EXE_brindle-bgp");
        let rust_log = std::env::var("BRTEST_LOG").unwrap_or_else(|_| "info".into());
        let mut args = vec![
            bin,
            "--config",
            cfg.to_str().unwrap_or_default(),
            "--status-file",
            status.to_str().unwrap_or_default(),
            "--status-interval-ms",
            "200",
        ];
        args.extend_from_slice(extra);
        self.spawn_env(
            ns,
            name,
            &args,
            &[("RUST_LOG", rust_log.as_str()), ("NO_COLOR", "1")],
        )
    }

    fn status(&self, name: &str) -> Option<Snapshot> {
        let text = fs::read_to_string(self.path(&format!("{name}.status.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn wait_brindle_established(&self, name: &str, peer: &str, secs: u64) {
        let what = format!("{name}: session with {peer} Established");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let st = self.status(name);
            if st
                .as_ref()
                .and_then(|s| s.peer(peer))
                .is_some_and(|p| p.state == "Established")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; status: {st:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_brindle_route(&self, name: &str, prefix: &str, source: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let st = self.status(name);
            let found = st.as_ref().is_some_and(|s| {
                s.routes
                    .iter()
                    .any(|r| r.prefix == prefix && r.paths.iter().any(|p| p.source == source))
            });
            if found {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {name} to learn {prefix} from {source}; status: {st:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
