//! The decision process (RFC 4271 §9.1.2.2 with the RFC 4456 §9 amendments) and ECMP
//! selection. A pure function of the candidate paths of one prefix.
//!
//! Order of the tie breaks (first difference wins):
//!
//! 1. a route we originate over a learned one;
//! 2. highest LOCAL_PREF (absent = 100);
//! 3. shortest AS_PATH (an AS_SET counts 1, confederation segments 0);
//! 4. lowest ORIGIN (IGP < EGP < INCOMPLETE);
//! 5. lowest MED (absent = 0), only between routes from the same neighbor AS unless
//!    `always_compare_med`;
//! 6. eBGP-learned over iBGP-learned;
//! 7. lowest router id (ORIGINATOR_ID when present);
//! 8. shortest CLUSTER_LIST;
//! 9. lowest neighbor address.
//!
//! Multipath: paths equal to the best through step 6 (and, for eBGP without
//! `multipath_relax`, from the same neighbor AS) are installed together, up to `max_paths`.
//!
//! Pure.

use std::cmp::Ordering;

use crate::route::{Path, RouteSource};

/// Knobs of the decision process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionOptions {
    /// Compare MED across neighbor ASes.
    pub always_compare_med: bool,
    /// How many paths to install (1 = no ECMP).
    pub max_paths: u8,
    /// ECMP across eBGP paths from different neighbor ASes.
    pub multipath_relax: bool,
}

impl Default for DecisionOptions {
    fn default() -> Self {
        DecisionOptions {
            always_compare_med: false,
            max_paths: 1,
            multipath_relax: false,
        }
    }
}

/// The step of the decision process that separated two paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Locally originated.
    LocallyOriginated,
    /// LOCAL_PREF.
    LocalPref,
    /// AS_PATH length.
    AsPathLength,
    /// ORIGIN.
    Origin,
    /// MULTI_EXIT_DISC.
    Med,
    /// eBGP over iBGP.
    EbgpOverIbgp,
    /// Router id / ORIGINATOR_ID.
    RouterId,
    /// CLUSTER_LIST length.
    ClusterListLength,
    /// Neighbor address.
    PeerAddress,
    /// Nothing separates them (same source).
    Equal,
}

fn step(o: Ordering, r: Reason) -> Option<(Ordering, Reason)> {
    (o != Ordering::Equal).then_some((o, r))
}

/// The comparison through step 6 (the multipath-relevant part). `Less` means `a` is better.
fn compare_upto_ibgp(a: &Path, b: &Path, opts: &DecisionOptions) -> Option<(Ordering, Reason)> {
    let local = |p: &Path| p.source != RouteSource::Local;
    step(local(a).cmp(&local(b)), Reason::LocallyOriginated)
        .or_else(|| {
            step(
                b.attrs
                    .local_pref_or_default()
                    .cmp(&a.attrs.local_pref_or_default()),
                Reason::LocalPref,
            )
        })
        .or_else(|| {
            step(
                a.attrs.as_path.path_len().cmp(&b.attrs.as_path.path_len()),
                Reason::AsPathLength,
            )
        })
        .or_else(|| step(a.attrs.origin.cmp(&b.attrs.origin), Reason::Origin))
        .or_else(|| {
            if opts.always_compare_med || a.neighbor_as() == b.neighbor_as() {
                step(
                    a.attrs.med.unwrap_or(0).cmp(&b.attrs.med.unwrap_or(0)),
                    Reason::Med,
                )
            } else {
                None
            }
        })
        .or_else(|| step(b.ebgp.cmp(&a.ebgp), Reason::EbgpOverIbgp))
}

/// Compare two paths of one prefix. `Less` means `a` is preferred; the reason names the step
/// that decided.
pub fn compare(a: &Path, b: &Path, opts: &DecisionOptions) -> (Ordering, Reason) {
    compare_upto_ibgp(a, b, opts)
        .or_else(|| step(a.tie_break_id().cmp(&b.tie_break_id()), Reason::RouterId))
        .or_else(|| {
            step(
                a.attrs.cluster_list.len().cmp(&b.attrs.cluster_list.len()),
                Reason::ClusterListLength,
            )
        })
        .or_else(|| step(a.source.cmp(&b.source), Reason::PeerAddress))
        .unwrap_or((Ordering::Equal, Reason::Equal))
}

/// The outcome of the decision process for one prefix: indexes into the candidates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// The best path.
    pub best: Option<usize>,
    /// The paths installed together (the best included, first) when ECMP applies and finds
    /// more than one; empty when the best path is used alone.
    pub multipath: Vec<usize>,
}

/// Run the decision process over `paths` (in a fixed order, e.g. by source). Because the MED
/// rule is not transitive, the best path is found by comparing each candidate in turn with
/// the best so far, in the order given.
pub fn select(paths: &[Path], opts: &DecisionOptions) -> Selection {
    select_eligible(paths, opts, |_| true)
}

/// [`select`] over the paths `eligible` accepts only (RFC 4271 §9.1.2.1: a path whose next
/// hop does not resolve takes no part).
pub fn select_eligible(
    paths: &[Path],
    opts: &DecisionOptions,
    eligible: impl Fn(&Path) -> bool,
) -> Selection {
    let mut best: Option<usize> = None;
    for (i, p) in paths.iter().enumerate() {
        if !eligible(p) {
            continue;
        }
        best = match best {
            Some(b) if compare(p, &paths[b], opts).0 != Ordering::Less => Some(b),
            _ => Some(i),
        };
    }
    let Some(b) = best else {
        return Selection::default();
    };
    let bp = &paths[b];
    // Without ECMP nothing is allocated: most prefixes have one path.
    let mut multipath = Vec::new();
    if opts.max_paths > 1 && bp.source != RouteSource::Local {
        multipath.push(b);
        for (i, p) in paths.iter().enumerate() {
            if multipath.len() >= usize::from(opts.max_paths) {
                break;
            }
            if i == b || p.source == RouteSource::Local || !eligible(p) {
                continue;
            }
            let equal = compare_upto_ibgp(p, bp, opts).is_none();
            let same_as = !bp.ebgp || opts.multipath_relax || p.neighbor_as() == bp.neighbor_as();
            let distinct_nh = p.attrs.next_hop.is_some()
                && multipath
                    .iter()
                    .all(|&j| paths[j].attrs.next_hop != p.attrs.next_hop);
            if equal && same_as && distinct_nh {
                multipath.push(i);
            }
        }
        if multipath.len() == 1 {
            multipath = Vec::new();
        }
    }
    Selection {
        best: Some(b),
        multipath,
    }
}
