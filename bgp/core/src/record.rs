//! Record and replay (feature `serde`): a session's inputs as JSON lines, replayed into a
//! fresh [`Speaker`] to reproduce its outputs exactly (the core is deterministic and reads no
//! clock). The driver writes a [`Entry::Start`] line and then one [`Entry::Step`] line per
//! input, with the time it was fed at; [`replay`] feeds them again and [`render`] prints the
//! outputs one per line for golden files.

use serde::{Deserialize, Serialize};

use crate::config::SpeakerConfig;
use crate::event::{Input, Output};
use crate::speaker::Speaker;
use crate::time::Instant;

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// How the speaker was created.
    Start {
        /// Its configuration (as the driver completed it).
        config: SpeakerConfig,
        /// Created with [`Speaker::new_restarting`] (graceful restart) at time 0.
        restarting: bool,
    },
    /// One input and when it was fed.
    Step {
        /// The driver's clock.
        at: Instant,
        /// The input.
        input: Input,
    },
}

impl Entry {
    /// The JSON line (without the newline).
    pub fn to_line(&self) -> String {
        // Plain data: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Parse a recording; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// The outputs of each step of a replay: the start's at time 0, then one per input.
pub type Steps = Vec<(Instant, Vec<Output>)>;

/// Feed a recording into a fresh speaker: the speaker as it ends up and the outputs of the
/// start and of every step.
pub fn replay(entries: &[Entry]) -> Result<(Speaker, Steps), String> {
    let mut it = entries.iter();
    let (mut speaker, first) = match it.next() {
        Some(Entry::Start { config, restarting }) => {
            if *restarting {
                Speaker::new_restarting(config.clone(), Instant::ZERO)
            } else {
                (Speaker::new(config.clone()), Vec::new())
            }
        }
        _ => return Err("a recording starts with a Start line".into()),
    };
    let mut out = vec![(Instant::ZERO, first)];
    for e in it {
        match e {
            Entry::Step { at, input } => out.push((*at, speaker.step(input.clone(), *at))),
            Entry::Start { .. } => return Err("a second Start line".into()),
        }
    }
    Ok((speaker, out))
}

/// The outputs one per line, `<ms> <output>`, for golden files.
pub fn render(steps: &[(Instant, Vec<Output>)]) -> String {
    let mut s = String::new();
    for (at, outs) in steps {
        for o in outs {
            s.push_str(&format!("{} {o:?}\n", at.0));
        }
    }
    s
}
