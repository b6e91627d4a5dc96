//! Import and export rules of a neighbor in the `brindle-bgp` file, spelled as the rules of a
//! Calico `BGPFilter` (`action`, `matchOperator`, `cidr`, `prefixLength`), one list for both
//! families: first match wins, no match accepts.
//!
//! ```yaml
//! import:
//!   - { action: Reject, matchOperator: In, cidr: 198.20.0.0/16 }
//!   - { action: Accept, cidr: 198.19.0.0/16, prefixLength: { min: 24, max: 28 } }
//! export:
//!   - { action: Reject, matchOperator: Equal, cidr: 198.18.101.0/24 }
//! ```

use brindle_bgp_core::{FilterAction, FilterRule, MatchOperator};
use brindle_bgp_wire::Prefix;
use serde::Deserialize;

use crate::config::parse_prefix;
use crate::error::Error;

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilterFileRule {
    /// `Accept` or `Reject`.
    pub action: String,
    /// `Equal`, `NotEqual`, `In` (default) or `NotIn`; needs `cidr`.
    #[serde(default)]
    pub match_operator: Option<String>,
    /// The CIDR compared with the route's prefix; absent = every prefix.
    #[serde(default)]
    pub cidr: Option<String>,
    /// Prefix length bounds.
    #[serde(default)]
    pub prefix_length: Option<PrefixLength>,
}

/// `prefixLength:` bounds, inclusive.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixLength {
    /// Shortest length matched.
    #[serde(default)]
    pub min: Option<u8>,
    /// Longest length matched.
    #[serde(default)]
    pub max: Option<u8>,
}

impl FilterFileRule {
    /// The core's rule; errors name `field` (e.g. `peers[198.18.0.2].import[1]`).
    pub fn to_rule(&self, field: &str) -> Result<FilterRule, Error> {
        let action = match self.action.as_str() {
            "Accept" | "accept" => FilterAction::Accept,
            "Reject" | "reject" => FilterAction::Reject,
            o => {
                return Err(Error::config(
                    format!("{field}.action"),
                    format!("{o:?}: expected Accept or Reject"),
                ));
            }
        };
        let op = match self.match_operator.as_deref() {
            None | Some("In") => MatchOperator::In,
            Some("NotIn") => MatchOperator::NotIn,
            Some("Equal") => MatchOperator::Equal,
            Some("NotEqual") => MatchOperator::NotEqual,
            Some(o) => {
                return Err(Error::config(
                    format!("{field}.matchOperator"),
                    format!("{o:?}: expected Equal, NotEqual, In or NotIn"),
                ));
            }
        };
        let mut rule = match &self.cidr {
            Some(c) => FilterRule::cidr(action, parse_prefix(c)?, op),
            None if self.match_operator.is_some() => {
                return Err(Error::config(
                    format!("{field}.matchOperator"),
                    "needs a cidr to compare with",
                ));
            }
            None => FilterRule::any(action),
        };
        if let Some(l) = self.prefix_length {
            let max_len = rule.cidr.map_or(128, |(p, _)| match p {
                Prefix::V4(..) => 32,
                _ => 128,
            });
            for (name, v) in [("min", l.min), ("max", l.max)] {
                if v.is_some_and(|v| v > max_len) {
                    return Err(Error::config(
                        format!("{field}.prefixLength.{name}"),
                        format!("at most {max_len}"),
                    ));
                }
            }
            if let (Some(a), Some(b)) = (l.min, l.max)
                && a > b
            {
                return Err(Error::config(
                    format!("{field}.prefixLength"),
                    "min is greater than max",
                ));
            }
            rule = rule.with_len(l.min, l.max);
        }
        Ok(rule)
    }
}

/// Convert a list, naming each rule by its index.
pub fn rules(list: &[FilterFileRule], field: &str) -> Result<Vec<FilterRule>, Error> {
    list.iter()
        .enumerate()
        .map(|(i, r)| r.to_rule(&format!("{field}[{i}]")))
        .collect()
}
