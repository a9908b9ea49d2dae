//! Polling a job until it ends: backoff with jitter, reset whenever the job moves.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use super::{Driver, DriverError, JobInfo};

/// How often to ask Bedrock how a job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollOptions {
    /// The first interval, and the interval after every change.
    pub initial: Duration,
    /// The longest interval, reached by growing 1.5× per unchanged poll.
    pub max: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
        }
    }
}

/// Intervals that grow while nothing changes and start over when something does, each with
/// ±20% jitter so many waiters do not poll in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    opts: PollOptions,
    current: Duration,
}

impl Backoff {
    /// Starts at `opts.initial`.
    pub fn new(opts: PollOptions) -> Backoff {
        Backoff {
            opts,
            current: opts.initial,
        }
    }

    /// The next interval to sleep: back to the start after a change, else grown.
    pub fn next(&mut self, changed: bool) -> Duration {
        self.current = if changed {
            self.opts.initial
        } else {
            self.current
                .mul_f64(1.5)
                .min(self.opts.max.max(self.opts.initial))
        };
        // A fresh RandomState is randomly keyed: enough randomness for jitter, no dependency.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let factor = 0.8 + 0.4 * (random % 1000) as f64 / 1000.0;
        self.current.mul_f64(factor)
    }
}

/// What a poll shows of a job, to tell whether it moved.
type ProgressKey = (String, Option<u64>, Option<u64>, Option<u64>);

fn progress_key(j: &JobInfo) -> ProgressKey {
    (
        j.status.to_string(),
        j.processed_records,
        j.succeeded_records,
        j.failed_records,
    )
}

/// Paces the polls of a set of jobs: a [`Backoff`] that starts over whenever a job moved (its
/// status or counters changed) since the last poll.
#[derive(Debug, Clone)]
pub struct Pacer {
    backoff: Backoff,
    last: Option<Vec<ProgressKey>>,
}

impl Pacer {
    /// A pacer with these intervals.
    pub fn new(opts: PollOptions) -> Pacer {
        Pacer {
            backoff: Backoff::new(opts),
            last: None,
        }
    }

    /// How long to sleep after a poll that showed `jobs`.
    pub fn next(&mut self, jobs: &[JobInfo]) -> Duration {
        let keys: Vec<ProgressKey> = jobs.iter().map(progress_key).collect();
        let changed = self.last.as_ref() != Some(&keys);
        self.last = Some(keys);
        self.backoff.next(changed)
    }
}

impl Driver {
    /// Polls `jobs` until every one is terminal, calling `on_update` after every poll, and
    /// returns their final state.
    pub async fn wait(
        &self,
        jobs: &[String],
        opts: PollOptions,
        mut on_update: impl FnMut(&[JobInfo]),
    ) -> Result<Vec<JobInfo>, DriverError> {
        let mut pacer = Pacer::new(opts);
        loop {
            let mut now = Vec::with_capacity(jobs.len());
            for job in jobs {
                now.push(self.get(job).await?);
            }
            on_update(&now);
            if now.iter().all(|j| j.status.is_terminal()) {
                return Ok(now);
            }
            tokio::time::sleep(pacer.next(&now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_starts_over_after_a_change() {
        let opts = PollOptions {
            initial: Duration::from_millis(1000),
            max: Duration::from_millis(4000),
        };
        let mut b = Backoff::new(opts);
        let within = |d: Duration, base: u64| {
            let ms = d.as_millis() as u64;
            assert!(
                ms >= base * 8 / 10 && ms <= base * 12 / 10,
                "{ms} vs {base}"
            );
        };
        within(b.next(true), 1000);
        within(b.next(false), 1500);
        within(b.next(false), 2250);
        within(b.next(false), 3375);
        within(b.next(false), 4000);
        within(b.next(false), 4000);
        within(b.next(true), 1000);
    }
}
