//! `brindlectl`: Brindle's command-line tool.

mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Brindle's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "brindlectl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests (brindle.dev/v1, projectcalico.org/v3, networking.k8s.io/v1
    /// NetworkPolicy) without applying them; exit 1 when any document is invalid.
    Validate {
        /// A file or a directory (read recursively: *.yaml, *.yml, *.json). `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files } => match validate::run(&files, &mut std::io::stdout()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("brindlectl: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
