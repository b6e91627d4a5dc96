//! `brindle-cni`: the CNI plugin binary. Reads the network configuration on stdin and the
//! `CNI_*` environment, prints the result (or the spec's error object) on stdout, logs to
//! stderr and, when the configuration names one, to a log file.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use tracing_subscriber::fmt::writer::MakeWriterExt;

fn main() {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let log_file = serde_json::from_slice::<serde_json::Value>(&stdin)
        .ok()
        .and_then(|v| {
            v.get("log_file_path")
                .and_then(|p| p.as_str())
                .map(str::to_string)
        })
        .and_then(|p| {
            if let Some(d) = std::path::Path::new(&p).parent() {
                let _ = std::fs::create_dir_all(d);
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRINDLE_CNI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match log_file {
        Some(f) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(f)))
            .init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init(),
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("{{\"code\":5,\"msg\":\"cannot start\",\"details\":\"{e}\"}}");
            std::process::exit(1);
        }
    };
    let (out, res) = rt.block_on(brindle_cni::run(&stdin, &env));
    if let Some(v) = out {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{v}");
    }
    if let Err(e) = res {
        tracing::error!(target: "cni", code = e.code, "{e}");
        std::process::exit(1);
    }
}
