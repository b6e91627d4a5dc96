//! Writes every Brindle CRD to `crds/manifests/crds.yaml` (or to the path given), or prints
//! them with `-`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match brindle_crds::crds_yaml() {
        Ok(y) => y,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRDs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crds.yaml").to_string();
    let path = std::env::args().nth(1).unwrap_or(default);
    if path == "-" {
        print!("{yaml}");
        return ExitCode::SUCCESS;
    }
    match std::fs::write(&path, yaml) {
        Ok(()) => {
            println!("wrote {path}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: cannot write {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
