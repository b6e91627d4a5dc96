//! The table of armed timers. The core remembers every deadline it asked the driver for, so
//! an expiry that raced with a cancel or a re-arm is recognised and ignored.
//!
//! Pure: no clock; deadlines are [`Instant`]s computed from the `now` of a step.

use std::collections::BTreeMap;

use crate::event::{Output, TimerId};
use crate::time::Instant;

/// Armed timers and their deadlines.
#[derive(Debug, Default, Clone)]
pub struct Timers {
    armed: BTreeMap<TimerId, Instant>,
}

impl Timers {
    /// Arm (or re-arm) `timer` for `at`.
    pub fn arm(&mut self, timer: TimerId, at: Instant, out: &mut Vec<Output>) {
        self.armed.insert(timer, at);
        out.push(Output::ArmTimer { timer, at });
    }

    /// Disarm `timer` if armed.
    pub fn cancel(&mut self, timer: TimerId, out: &mut Vec<Output>) {
        if self.armed.remove(&timer).is_some() {
            out.push(Output::CancelTimer(timer));
        }
    }

    /// True when `timer` is armed.
    pub fn is_armed(&self, timer: TimerId) -> bool {
        self.armed.contains_key(&timer)
    }

    /// The deadline of `timer`, if armed.
    pub fn deadline(&self, timer: TimerId) -> Option<Instant> {
        self.armed.get(&timer).copied()
    }

    /// Accept an expiry reported by the driver: true (and disarmed) when the timer is armed
    /// and due at `now`; false for stale or early reports.
    pub fn fire(&mut self, timer: TimerId, now: Instant) -> bool {
        match self.armed.get(&timer) {
            Some(at) if *at <= now => {
                self.armed.remove(&timer);
                true
            }
            _ => false,
        }
    }

    /// Disarm every timer matching `pred`.
    pub fn cancel_where(&mut self, pred: impl Fn(&TimerId) -> bool, out: &mut Vec<Output>) {
        let gone: Vec<TimerId> = self.armed.keys().filter(|t| pred(t)).copied().collect();
        for t in gone {
            self.cancel(t, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PeerTimer;
    use std::net::IpAddr;

    #[test]
    fn stale_and_early_expiries_are_ignored() {
        let peer: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let t = TimerId::Peer(peer, PeerTimer::ConnectRetry);
        let mut timers = Timers::default();
        let mut out = Vec::new();
        timers.arm(t, Instant(1000), &mut out);
        assert!(!timers.fire(t, Instant(999)));
        assert!(timers.fire(t, Instant(1000)));
        assert!(!timers.fire(t, Instant(2000)));
        timers.arm(t, Instant(3000), &mut out);
        timers.cancel(t, &mut out);
        assert!(!timers.fire(t, Instant(4000)));
        assert_eq!(out.len(), 3);
    }
}
