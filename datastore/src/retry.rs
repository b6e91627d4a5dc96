//! The one conflict-retry helper: every compare-and-swap loop in Brindle goes through
//! [`retry_on_conflict`] (bounded attempts, jittered exponential backoff, the conflict logged).

use std::future::Future;
use std::time::Duration;

use crate::{Error, Result};

/// How hard to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay after the first conflict; doubles each time up to `max_delay`.
    pub base_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(100),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, with ±50% jitter so contenders spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.5 + fastrand::f64())
    }
}

/// Runs `op` until it returns something other than [`Error::Conflict`], or the attempts run
/// out (then the last conflict is returned). `what` names the object in the logs.
pub async fn retry_on_conflict<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e @ Error::Conflict { .. }) => {
                attempt += 1;
                if attempt >= policy.max_attempts {
                    tracing::warn!(target: "datastore.retry", what, attempts = attempt, error = %e, "giving up after conflicts");
                    return Err(e);
                }
                tracing::debug!(target: "datastore.retry", what, attempt, reason = %e, "conflict, retrying");
                tokio::time::sleep(policy.delay(attempt)).await;
            }
            other => return other,
        }
    }
}
