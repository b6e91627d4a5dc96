//! Policy apply latency at Felix's scale points: `cargo bench -p brindle-felix --bench apply`
//! (root; network namespaces; not a test). CI runs the smaller points in the test profile
//! (`BENCH_POINTS=100,500,2000 cargo test -p brindle-felix --bench apply`).
//!
//! For each scale point (policies × local endpoints, 10 rules per policy, as many remote
//! endpoints as local ones) and each dataplane (nftables, iptables), in a fresh network
//! namespace: the full apply (calculation, rendering, the driver writing to an empty kernel),
//! then five one-policy changes (a port of one rule), each timed from the new inputs to the
//! driver's return. Prints the times, the rule and set counts, the CPU used by the agent's own
//! code and by the `nft` / `iptables-restore` / `ipset` processes it ran, and the peak RSS.
//! `BENCH_POINTS` picks the points (default `100,500,2000,10000`; 10000 means 10,000 policies
//! × 5,000 local endpoints).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brindle_crds::policy::{PolicyType, Rule};
use brindle_felix::calc::{Endpoint, Inputs, Plan, Policy, calculate};
use brindle_felix::dataplane::{Dataplane, Kind};
use brindle_tests::netns::{Lab, in_netns, require};

const RULES: usize = 10;
const ROLES: usize = 100;

fn endpoints_for(policies: usize) -> usize {
    match policies {
        p if p >= 10_000 => 5_000,
        p if p >= 2_000 => 1_000,
        _ => 250,
    }
}

fn rule(p: usize, j: usize) -> Rule {
    let v = if j == RULES - 1 {
        serde_json::json!({"action": "Allow", "source": {"nets": [format!("203.0.113.{}/32", p % 256)]}})
    } else {
        serde_json::json!({
            "action": "Allow",
            "protocol": "TCP",
            "source": {"selector": format!("role == 'r{}'", (p * 7 + j) % ROLES)},
            "destination": {"ports": [1000 + (p + j) % 1000]},
        })
    };
    serde_json::from_value(v).expect("a rule")
}

fn ip(i: usize) -> ipnetwork::IpNetwork {
    let n = 0xc612_0000u32 + u32::try_from(i).expect("small");
    ipnetwork::IpNetwork::new(std::net::Ipv4Addr::from(n).into(), 32).expect("a /32")
}

fn inputs(policies: usize, local: usize) -> Inputs {
    let apps = (local / 2).max(1);
    let mut inp = Inputs::default();
    for i in 0..2 * local {
        let node = if i < local { "node-1" } else { "node-2" };
        inp.endpoints.push(Endpoint {
            iface: format!("cali{i:011x}"),
            node: node.into(),
            namespace: format!("n{}", i % 20),
            labels: BTreeMap::from([
                ("app".into(), format!("a{}", i % apps)),
                ("role".into(), format!("r{}", i % ROLES)),
            ]),
            ips: vec![ip(i)],
            profiles: vec![format!("kns.n{}", i % 20)],
            ports: BTreeMap::new(),
        });
    }
    for p in 0..policies {
        inp.policies.push(Policy {
            id: format!("default/p{p}"),
            tier: "default".into(),
            order: Some(p as f64),
            namespace: None,
            selector: Some(format!("app == 'a{}'", p % apps)),
            types: vec![PolicyType::Ingress],
            ingress: (0..RULES).map(|j| rule(p, j)).collect(),
            egress: Vec::new(),
            flags: Default::default(),
        });
    }
    inp
}

/// CPU time (user + system) of this process and of its reaped children, from
/// `/proc/self/stat` (in clock ticks, `getconf CLK_TCK` per second).
fn cpu() -> (Duration, Duration) {
    let hz: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name in parentheses: state is field 3; utime, stime, cutime,
    // cstime are fields 14 to 17.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| f.get(i - 3).copied().unwrap_or(0.0);
    let secs = |t: f64| Duration::from_secs_f64(t / hz);
    (secs(at(14) + at(15)), secs(at(16) + at(17)))
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Result {
    calc: Duration,
    render_apply: Duration,
    /// (total, calculation, rendering)
    change: Vec<(Duration, Duration, Duration)>,
    cpu_self: Duration,
    cpu_children: Duration,
    rules: usize,
    sets: usize,
}

fn rules_in(plan: &Plan) -> usize {
    plan.policies
        .values()
        .map(|p| p.ingress.len() + p.egress.len())
        .sum()
}

fn run(kind: Kind, policies: usize) -> Result {
    let local = endpoints_for(policies);
    let mut inp = inputs(policies, local);
    let mut lab = Lab::new();
    let ns = lab.ns("bench");
    in_netns(&ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut dp = Dataplane::new();
            let (s0, c0) = cpu();
            let t = Instant::now();
            let plan = calculate(&inp, "node-1");
            let calc = t.elapsed();
            if let Some(dir) = std::env::var_os("BENCH_DUMP") {
                let dir = std::path::Path::new(&dir);
                let _ = std::fs::write(
                    dir.join(format!("{policies}.nft")),
                    brindle_felix::nft::render(&plan).text(),
                );
                let _ = std::fs::write(
                    dir.join(format!("{policies}.ipt")),
                    brindle_felix::ipt::render(&plan).text(),
                );
            }
            let t = Instant::now();
            assert!(dp.apply(kind, &plan).await.expect("apply"), "wrote");
            let render_apply = t.elapsed();
            let (s1, c1) = cpu();
            let (rules, sets) = (rules_in(&plan), plan.sets.len());
            let mut change = Vec::new();
            for k in 0..5 {
                inp.policies[0].ingress[0] = rule(policies + k + 1, 0);
                let t = Instant::now();
                let plan = calculate(&inp, "node-1");
                let c = t.elapsed();
                // The rendering alone, timed outside the change (apply renders again).
                let t = Instant::now();
                match kind {
                    Kind::Nftables => drop(brindle_felix::nft::render(&plan)),
                    Kind::Iptables => drop(brindle_felix::ipt::render(&plan)),
                }
                let r = t.elapsed();
                let t = Instant::now();
                assert!(dp.apply(kind, &plan).await.expect("apply"), "wrote");
                change.push((c + t.elapsed(), c, r));
            }
            change.sort();
            Result {
                calc,
                render_apply,
                change,
                cpu_self: s1 - s0,
                cpu_children: c1 - c0,
                rules,
                sets,
            }
        })
    })
    .join()
    .expect("the bench thread")
}

fn main() {
    // `cargo test --benches` runs this too; it only measures when asked.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") && std::env::var_os("BENCH_POINTS").is_none() {
        return;
    }
    require(&["nft", "iptables-restore", "ipset"]);
    let points: Vec<usize> = std::env::var("BENCH_POINTS")
        .unwrap_or_else(|_| "100,500,2000,10000".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    println!(
        "| policies | local endpoints | dataplane | rules | sets | calculation | render + apply | full apply CPU (agent + tools) | one change p50 (calculation, rendering) | one change max |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &p in &points {
        for kind in [Kind::Nftables, Kind::Iptables] {
            let r = run(kind, p);
            println!(
                "| {p} | {} | {kind:?} | {} | {} | {} | {} | {} + {} | {} | {} |",
                endpoints_for(p),
                r.rules,
                r.sets,
                ms(r.calc),
                ms(r.render_apply),
                ms(r.cpu_self),
                ms(r.cpu_children),
                {
                    let (t, c, rd) = r.change[r.change.len() / 2];
                    format!("{} ({}, {})", ms(t), ms(c), ms(rd))
                },
                ms(r.change[r.change.len() - 1].0),
            );
        }
    }
    println!(
        "\npeak RSS of the benchmark process: {:.1} MiB",
        peak_rss_mib()
    );
}
