//! Recording: `brindle-bgp --record` against BIRD (routes learned, one withdrawn, one
//! originated), then the recording is replayed into a fresh core: the replay ends with the
//! live speaker's table, and two replays give identical outputs. `BRINDLE_REGEN=1` also
//! stores the recording and its replayed outputs as the golden files of
//! `bgp/core/tests/replay.rs`.

mod common;
use common::*;

use brindle_bgp_core::Input;
use brindle_bgp_core::record::{Entry, parse, render, replay};

#[test]
fn a_recorded_session_replays_to_the_same_table() {
    require(&["ip", "bird", "birdc"]);
    let mut lab = Lab::new();
    let b = lab.ns("b");
    let r = lab.ns("r");
    lab.link(&b, "v1", &["198.18.33.1/24"], &r, "vr", &["198.18.33.2/24"]);
    lab.bird(
        &r,
        "bird",
        r#"
router id 198.18.33.2;
log stderr all;
protocol device { scan time 2; }
protocol static s4 { ipv4; route 198.19.40.0/24 blackhole; route 198.19.41.0/24 blackhole; }
protocol static s5 { ipv4; route 198.19.42.0/24 blackhole; }
protocol bgp b4 {
  local 198.18.33.2 as 65002; neighbor 198.18.33.1 as 65001;
  hold time 9; connect retry time 1;
  ipv4 { import all; export where source = RTS_STATIC; };
}
"#,
    );
    let rec = lab.path("session.jsonl");
    let idx = lab.brindle_args(
        &b,
        "brindle",
        r#"
local_as: 65001
router_id: 198.18.33.1
idle_hold_seconds: 1
kernel: { enabled: false }
originate:
  - prefix: 198.18.200.0/24
peers:
  - { address: 198.18.33.2, remote_as: 65002, hold_time: 9, connect_retry: 1 }
"#,
        &["--record", rec.to_str().unwrap_or_default()],
    );
    lab.wait_brindle_established("brindle", "198.18.33.2", 30);
    lab.wait_brindle_route("brindle", "198.19.42.0/24", "198.18.33.2", 10);
    lab.birdc("bird", "disable s5");
    wait_for("the withdrawal", 10, || {
        let st = lab.status("brindle")?;
        (!st.routes.iter().any(|r| r.prefix == "198.19.42.0/24")).then_some(())
    });
    wait_for("BIRD learns our prefix", 10, || {
        lab.birdc("bird", "show route 198.18.200.0/24")
            .contains("198.18.200.0/24")
            .then_some(())
    });
    let live: Vec<String> = lab
        .status("brindle")
        .expect("status")
        .routes
        .iter()
        .map(|r| r.prefix.clone())
        .collect();
    assert!(lab.terminate(idx, 10), "brindle-bgp stops on SIGTERM");

    let text = std::fs::read_to_string(&rec).expect("recording");
    let entries = parse(&text).expect("parse the recording");
    // The table before the shutdown (SIGTERM takes every neighbor down, recorded too).
    let shutdown = entries
        .iter()
        .position(|e| {
            matches!(e, Entry::Step { input: Input::Batch(v), .. }
                if v.iter().any(|i| matches!(i, Input::AdminDown(_))))
        })
        .expect("the shutdown is recorded");
    let (speaker, _) = replay(&entries[..shutdown]).expect("replay");
    let replayed: Vec<String> = speaker
        .routes()
        .iter()
        .map(|r| r.prefix.to_string())
        .collect();
    assert_eq!(replayed, live, "the replay ends with the live table");
    let (_, steps) = replay(&entries).expect("replay");
    let (_, again) = replay(&entries).expect("replay");
    assert_eq!(render(&steps), render(&again), "replays are identical");

    if std::env::var_os("BRINDLE_REGEN").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/fixtures/replay");
        std::fs::write(format!("{dir}/bird-session.jsonl"), &text).expect("write recording");
        std::fs::write(format!("{dir}/bird-session.outputs.txt"), render(&steps))
            .expect("write golden");
    }
}
