//! The dataplane the agent programs: nftables (Brindle's own table) or iptables (our chains and
//! ipsets), chosen by a flag or by FelixConfiguration's `nftablesMode`. Switching from one to
//! the other removes everything of ours from the one left, so a host never runs both.

use brindle_crds::felix::NftablesMode;

use crate::calc::Plan;
use crate::driver::{Driver, Error};
use crate::ipt_driver::IptDriver;
use crate::{ipt, nft};

/// Which packet filter enforces policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// nftables: one `inet brindle` table.
    Nftables,
    /// iptables-restore and ipsets: `brindle-` chains.
    Iptables,
}

impl Kind {
    /// The kind FelixConfiguration's `nftablesMode` asks for; `Auto` (or unset) picks nftables
    /// when `nft_works`, else iptables.
    pub fn from_mode(mode: Option<NftablesMode>, nft_works: bool) -> Kind {
        match mode.unwrap_or_default() {
            NftablesMode::Enabled => Kind::Nftables,
            NftablesMode::Disabled => Kind::Iptables,
            NftablesMode::Auto if nft_works => Kind::Nftables,
            NftablesMode::Auto => Kind::Iptables,
        }
    }
}

/// Whether `nft` runs here (for `Auto`).
pub async fn nft_works() -> bool {
    crate::driver::run("nft", &["list", "tables"], None, "probe")
        .await
        .is_ok()
}

/// The agent's dataplane: applies plans with the chosen kind's driver.
#[derive(Debug, Default)]
pub struct Dataplane {
    current: Option<Kind>,
    nft: Driver,
    ipt: IptDriver,
}

impl Dataplane {
    /// Nothing applied yet.
    pub fn new() -> Dataplane {
        Dataplane::default()
    }

    /// Makes the kernel enforce `plan` with `kind` (removing the other kind's rules first when
    /// switching). Returns true when it wrote.
    pub async fn apply(&mut self, kind: Kind, plan: &Plan) -> Result<bool, Error> {
        if self.current != Some(kind) {
            match kind {
                Kind::Nftables => IptDriver::remove().await?,
                Kind::Iptables => Driver::remove().await?,
            }
            tracing::info!(target: "felix", event = "dataplane", kind = ?kind);
            self.current = Some(kind);
        }
        match kind {
            Kind::Nftables => self.nft.apply(&nft::render(plan)).await,
            Kind::Iptables => self.ipt.apply(&ipt::render(plan)).await,
        }
    }

    /// Removes the rules of both kinds (policy turned off).
    pub async fn remove_all() -> Result<(), Error> {
        Driver::remove().await?;
        IptDriver::remove().await
    }
}
