//! Fault injection for the rollback tests: with `BRINDLE_CNI_FAILPOINT=<point>` an ADD fails at
//! that point as if the step had failed; with `<point>:kill` the process dies there at once
//! (abort: no unwinding, no cleanup, as when a runtime's timeout kills the plugin). Unset, each
//! point costs one environment lookup.
//!
//! Points, in the order ADD reaches them: `wire` (before the veth is made), `wired` (the pod
//! is wired, the step then fails), `endpoint` (before the WorkloadEndpoint is written).

use crate::spec::{CniError, code};

/// The variable that names the point.
pub const VAR: &str = "BRINDLE_CNI_FAILPOINT";

/// Fails (or dies) at `point` when asked to.
pub fn hit(point: &str) -> Result<(), CniError> {
    let Ok(want) = std::env::var(VAR) else {
        return Ok(());
    };
    if want == point {
        return Err(CniError::new(
            code::INJECTED,
            "injected failure",
            format!("{VAR}={point}"),
        ));
    }
    if want.strip_suffix(":kill") == Some(point) {
        tracing::error!(target: "cni", point, "injected kill");
        std::process::abort();
    }
    Ok(())
}
