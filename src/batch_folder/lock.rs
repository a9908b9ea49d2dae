//! One writer at a time: the folder's lock.
//!
//! A writer takes `.bedrock-batch/lock` before it changes anything and lets go when it is done.
//! The lock holds who took it (host, process, command, start time) so that a refusal can name
//! the holder.
//!
//! - **Local folder**: an advisory lock (`flock`) on the lock file. The kernel releases it when the
//!   holder's process ends, however it ends, so a local lock is never stale: a run killed with
//!   SIGKILL leaves a file anyone can lock at once.
//! - **S3 prefix**: a lock object created with a conditional PUT (`If-None-Match: *`), so two
//!   machines cannot both create it. It is a lease: the holder renews it (`If-Match` on the
//!   ETag it holds) every quarter of the lease, and a holder that stops renewing is provably gone
//!   once `expires_at` (plus a minute for clocks that disagree) has passed. Such a lock, or one
//!   whose holder was on this host and whose process no longer exists, is taken over — again
//!   conditionally (`If-Match` on the ETag seen), so two takers cannot both win. `--break-lock`
//!   takes over any holder.
//!   A writer whose lock was taken over (it stalled past its lease) finds out at its next renewal
//!   and commits nothing. A renewal that fails for another reason (the store out of reach) is
//!   tried again every sixteenth of the lease; the lock counts as lost only an eighth of a lease
//!   before the last lease written runs out. The renewal right before a commit is one of these.
//!   A write that landed but whose answer was lost (a network blip after S3 acted) makes the
//!   next one be refused; the store's lock then finds the body it sent in the object — no other
//!   run writes the same bytes, as each names its taking — and goes on from that version.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::layout::LOCK;
use super::FolderError;
use crate::io::{Destination, HeldLock, LockAttempt, LockTakenOver};

/// How a writer takes the folder's lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// The command, for the holder's description (`to-bedrock`, `serve` …).
    pub command: String,
    /// Take the lock from whoever holds it (a run known to be dead whose lease has not run out).
    pub break_lock: bool,
    /// How long an S3 lock lasts without renewal.
    pub lease: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            command: "bedrock-batch".to_owned(),
            break_lock: false,
            lease: Duration::from_secs(120),
        }
    }
}

impl LockOptions {
    /// Options naming `command`.
    pub fn for_command(command: &str) -> Self {
        LockOptions {
            command: command.to_owned(),
            ..Default::default()
        }
    }
}

/// How far two machines' clocks may disagree before a lease looks expired too early.
const CLOCK_SKEW: u64 = 60;

/// How many times taking the lock starts again when a stale lock it was taking over is let go
/// of first (its run ending late, or another run taking it and letting it go).
const TAKINGS: u32 = 3;

/// What the lock file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    host: String,
    /// What tells this machine (its boot) and process namespace from another with the same host
    /// name (containers often share one): only a holder with the same is judged by its pid.
    #[serde(default)]
    machine: String,
    pid: u32,
    command: String,
    started_at: u64,
    expires_at: u64,
    /// Which taking of a lock by this process wrote it. With the host, machine and pid it makes
    /// every body a run writes one no other run writes, as the store's lock needs to recognise
    /// its own write whose answer was lost.
    #[serde(default)]
    acquisition: String,
}

/// A name for one taking of a lock, unique within this process.
fn acquisition() -> String {
    static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", TAKEN.fetch_add(1, Ordering::Relaxed))
}

/// This boot of this machine and this process namespace, as far as the system says.
fn machine_id() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("{}/{ns}", boot.trim())
}

impl Holder {
    fn describe(&self) -> String {
        format!(
            "host {}, pid {}, `{}`, since {}",
            self.host,
            self.pid,
            self.command,
            super::time_text(self.started_at)
        )
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The folder's lock, held.
pub(crate) struct FolderLock {
    lease: Arc<Lease>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    folder: String,
    released: bool,
}

/// A held lock and its lease: what the background renewer and the renewal before a commit share.
struct Lease {
    held: Arc<dyn HeldLock>,
    holder: Holder,
    length: Duration,
    known: std::sync::Mutex<Known>,
    /// Set once the lock is lost: taken over, or not renewed in time.
    lost: AtomicBool,
}

/// Until when the lock is surely ours.
#[derive(Clone, Copy)]
struct Known {
    /// A lease from the start of the last write of the lock that was answered (the one that took
    /// it, at first).
    ours_until: Instant,
    /// That write's `expires_at`, by the wall clock, which also counts a machine's suspension
    /// (the monotonic clock does not).
    written_expiry: u64,
}

impl Lease {
    /// Renews the lease. A store out of reach (past the SDK's own retries) is tried again,
    /// sooner, while the lease last written runs, so that one blip does not cost a long run its
    /// folder; the lock counts as lost an eighth of a lease before that lease runs out (an
    /// attempt still unanswered then is given up), or at once when another run took it.
    async fn renew(&self) -> Result<(), std::io::Error> {
        loop {
            let known = *self.known.lock().expect("not poisoned");
            let give_up = known.ours_until - self.length / 8;
            let sent = Instant::now();
            let mut me = self.holder.clone();
            me.expires_at = now() + self.length.as_secs();
            let body = Bytes::from(serde_json::to_vec(&me).expect("serializes"));
            let attempt = tokio::time::timeout_at(give_up.into(), self.held.refresh(body));
            let failure = match attempt.await {
                Ok(Ok(())) => {
                    let mut known = self.known.lock().expect("not poisoned");
                    // The renewer's and a commit's renewals may finish in either order.
                    if sent + self.length > known.ours_until {
                        known.ours_until = sent + self.length;
                        known.written_expiry = me.expires_at;
                    }
                    return Ok(());
                }
                Ok(Err(e)) => e,
                Err(_) => std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the store did not answer before the lease's end",
                ),
            };
            // Judged by the lease as it stands now: the other renewal (the renewer's, or a
            // commit's) may have renewed it while this one waited its turn.
            let known = *self.known.lock().expect("not poisoned");
            let give_up = known.ours_until - self.length / 8;
            let again = !LockTakenOver::is(&failure)
                && !self.lost.load(Ordering::SeqCst)
                && Instant::now() + self.length / 16 < give_up
                && now() + (self.length / 8).as_secs() < known.written_expiry;
            if !again {
                tracing::warn!("renewing the folder's lock: {failure}");
                self.lost.store(true, Ordering::SeqCst);
                return Err(failure);
            }
            tracing::warn!("renewing the folder's lock, trying again: {failure}");
            tokio::time::sleep(self.length / 16).await;
        }
    }
}

impl FolderLock {
    /// Takes the lock of `dest`, or says who holds it.
    pub async fn acquire(
        dest: &dyn Destination,
        opts: &LockOptions,
    ) -> Result<FolderLock, FolderError> {
        let folder = dest.uri("");
        // Before the lock is asked for: the lease that taking it writes runs from no earlier.
        let asked = Instant::now();
        let me = Holder {
            host: crate::io::host_name(),
            machine: machine_id(),
            pid: std::process::id(),
            command: opts.command.clone(),
            started_at: now(),
            expires_at: now() + opts.lease.as_secs(),
            acquisition: acquisition(),
        };
        let expires_at = me.expires_at;
        let body = || Bytes::from(serde_json::to_vec(&me).expect("serializes"));
        // A lock found stale can be let go of by its holder before the take-over: then it is
        // taken afresh, a few times at most.
        let mut rounds = 0;
        let held = loop {
            rounds += 1;
            if rounds > TAKINGS {
                return Err(FolderError::Locked {
                    folder,
                    holder: format!(
                        "it let the lock go as this run took it over, {TAKINGS} times running"
                    ),
                    hint: "Then try again.".into(),
                });
            }
            let io = FolderError::io(format!("locking {}", dest.uri(LOCK)));
            let (holder, version) = match dest.lock(LOCK, body(), None).await.map_err(io)? {
                LockAttempt::Acquired(held) => break held,
                LockAttempt::Busy { holder, version } => (holder, version),
                // Said of a take-over only; whichever finds the lock gone, it is free again.
                LockAttempt::Released => continue,
            };
            let other: Option<Holder> = serde_json::from_slice(&holder).ok();
            let described = other.as_ref().map_or_else(
                || "a holder that left no description".to_owned(),
                Holder::describe,
            );
            let Some(version) = version else {
                return Err(FolderError::Locked {
                    folder,
                    holder: described,
                    hint: "The lock goes when that process ends.".into(),
                });
            };
            let stale = match &other {
                Some(h) => {
                    let here =
                        h.host == me.host && h.machine == me.machine && !me.machine.is_empty();
                    (here && !crate::io::pid_alive(h.pid))
                        || now() > h.expires_at.saturating_add(CLOCK_SKEW)
                }
                None => false,
            };
            if !(stale || opts.break_lock) {
                let hint = match &other {
                    Some(h) => format!(
                        "If that run is dead, its lock expires at {}; --break-lock takes it now.",
                        super::time_text(h.expires_at.saturating_add(CLOCK_SKEW))
                    ),
                    None => "If that run is dead, --break-lock takes the lock.".to_owned(),
                };
                return Err(FolderError::Locked {
                    folder,
                    holder: described,
                    hint,
                });
            }
            let io = FolderError::io(format!("taking over the lock {}", dest.uri(LOCK)));
            match dest.lock(LOCK, body(), Some(version)).await.map_err(io)? {
                LockAttempt::Acquired(held) => {
                    tracing::warn!(
                        "{folder}: took over the lock of {described} ({})",
                        if stale { "gone" } else { "--break-lock" }
                    );
                    break held;
                }
                LockAttempt::Released => continue,
                LockAttempt::Busy { holder, .. } => {
                    let described = serde_json::from_slice::<Holder>(&holder)
                        .map_or_else(|_| "another run".to_owned(), |h| h.describe());
                    return Err(FolderError::Locked {
                        folder,
                        holder: described,
                        hint: "It took the lock over just before this run.".into(),
                    });
                }
            }
        };
        let lease = Arc::new(Lease {
            held,
            holder: me,
            length: opts.lease,
            known: std::sync::Mutex::new(Known {
                ours_until: asked + opts.lease,
                written_expiry: expires_at,
            }),
            lost: AtomicBool::new(false),
        });
        let renewer = lease.held.needs_refresh().then(|| {
            let lease = Arc::clone(&lease);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease.length / 4).await;
                    if lease.renew().await.is_err() {
                        break;
                    }
                }
            })
        });
        Ok(FolderLock {
            lease,
            renewer,
            folder,
            released: false,
        })
    }

    /// Fails if the lock was lost (taken over after this run stalled past its lease).
    pub fn check(&self) -> Result<(), FolderError> {
        if self.lease.lost.load(Ordering::SeqCst) {
            return Err(FolderError::LockLost {
                folder: self.folder.clone(),
            });
        }
        Ok(())
    }

    /// Makes sure the lock is still this run's, right before a commit: a lease is renewed now
    /// (conditionally, so a lock taken over since fails; a store out of reach is tried again
    /// while the lease runs, as the renewer does), and a lost lock is an error.
    pub async fn confirm(&self) -> Result<(), FolderError> {
        self.check()?;
        if self.lease.held.needs_refresh() && self.lease.renew().await.is_err() {
            return Err(FolderError::LockLost {
                folder: self.folder.clone(),
            });
        }
        Ok(())
    }

    /// Lets go of the lock.
    pub async fn release(mut self) {
        self.released = true;
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if let Err(e) = self.lease.held.release().await {
            tracing::warn!("{}: releasing the lock: {e}", self.folder);
        }
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if self.released {
            return;
        }
        // Dropped without a release (an error path, a cancelled request): let go in the
        // background if a runtime is still there; a local lock goes with the file handle anyway.
        let held = Arc::clone(&self.lease.held);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = held.release().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::{BoxFuture, FutureExt};

    /// A held lock whose renewals run one at a time (as the S3 lock's do), each taking the next
    /// of the scripted times.
    struct Scripted(tokio::sync::Mutex<std::collections::VecDeque<Duration>>);

    impl HeldLock for Scripted {
        fn refresh(&self, _holder: Bytes) -> BoxFuture<'_, std::io::Result<()>> {
            async move {
                let mut script = self.0.lock().await;
                tokio::time::sleep(script.pop_front().unwrap_or_default()).await;
                Ok(())
            }
            .boxed()
        }

        fn needs_refresh(&self) -> bool {
            true
        }

        fn release(&self) -> BoxFuture<'_, std::io::Result<()>> {
            async { Ok(()) }.boxed()
        }
    }

    /// A lease of 8 s, last written 2 s ago. A commit's renewal takes 4 s and renews it; the
    /// renewer's, started just after, waits its turn and takes 2 s more, ending 6 s in: within
    /// the lease just renewed, though past the one it saw when it started. The lock is not lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_renewal_is_judged_by_the_lease_as_it_stands_when_it_ends() {
        let length = Duration::from_secs(8);
        let script = [Duration::from_secs(4), Duration::from_secs(2)];
        let lease = Arc::new(Lease {
            held: Arc::new(Scripted(tokio::sync::Mutex::new(script.into()))),
            holder: Holder {
                host: "h".into(),
                machine: "m".into(),
                pid: 1,
                command: "c".into(),
                started_at: now(),
                expires_at: now() + 6,
                acquisition: acquisition(),
            },
            length,
            known: std::sync::Mutex::new(Known {
                ours_until: Instant::now() + length - Duration::from_secs(2),
                written_expiry: now() + 6,
            }),
            lost: AtomicBool::new(false),
        });
        let renew = |lease: &Arc<Lease>| {
            let lease = Arc::clone(lease);
            tokio::spawn(async move { lease.renew().await })
        };
        let commit = renew(&lease);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let renewer = renew(&lease);
        commit.await.unwrap().expect("the commit's renewal");
        let second = renewer.await.unwrap();
        assert!(
            !lease.lost.load(Ordering::SeqCst),
            "lost, with the lease renewed: {second:?}"
        );
    }

    #[test]
    fn no_two_takings_are_named_alike() {
        let names: std::collections::HashSet<String> = (0..1000).map(|_| acquisition()).collect();
        assert_eq!(names.len(), 1000);
    }
}
