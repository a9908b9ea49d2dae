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

/// How many takeovers one taking of the lock tries: a stale lock can be let go of (its run
/// ending late, or another run taking it and letting it go) just before it is taken over, and
/// then the lock is created afresh, or the next holder judged.
const TAKEOVERS: u32 = 3;

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
        // taken afresh, a few times at most. `--break-lock` breaks the lock of the holder seen
        // first only: one that took the lock since is judged as any holder is.
        let mut takeovers = 0;
        let mut breaking = opts.break_lock;
        let held = loop {
            let io = || FolderError::io(format!("locking {}", dest.uri(LOCK)));
            let (holder, version) = match dest.lock(LOCK, body(), None).await.map_err(io())? {
                LockAttempt::Acquired(held) => break held,
                LockAttempt::Busy { holder, version } => (holder, version),
                // Said of a take-over only.
                LockAttempt::Released => {
                    return Err(io()(std::io::Error::other(
                        "the store answered a new lock as if taking one over",
                    )))
                }
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
            if !(stale || breaking) {
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
            if takeovers == TAKEOVERS {
                return Err(FolderError::Locked {
                    folder,
                    holder: described,
                    hint: format!("The lock was let go of and taken again {TAKEOVERS} times while this run took it over; try again."),
                });
            }
            takeovers += 1;
            let io = FolderError::io(format!("taking over the lock {}", dest.uri(LOCK)));
            match dest.lock(LOCK, body(), Some(version)).await.map_err(io)? {
                LockAttempt::Acquired(held) => {
                    tracing::warn!(
                        "{folder}: took over the lock of {described} ({})",
                        if stale { "gone" } else { "--break-lock" }
                    );
                    break held;
                }
                LockAttempt::Released => breaking = false,
                LockAttempt::Busy { holder, .. } => {
                    let described = serde_json::from_slice::<Holder>(&holder)
                        .map_or_else(|_| "another run".to_owned(), |h| h.describe());
                    return Err(FolderError::Locked {
                        folder,
                        holder: described,
                        hint: "It took the lock just before this run.".into(),
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

    /// Lets go of the lock. A release still unanswered when the lease runs out (and at least an
    /// eighth of a lease from now) is given up: the lock is then anyone's anyway, and a store out
    /// of reach must not hold up the end of a run that has finished its work.
    pub async fn release(mut self) {
        self.released = true;
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let ours_until = self.lease.known.lock().expect("not poisoned").ours_until;
        let deadline = ours_until.max(Instant::now() + self.lease.length / 8);
        match tokio::time::timeout_at(deadline.into(), self.lease.held.release()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("{}: releasing the lock: {e}", self.folder),
            Err(_) => tracing::warn!(
                "{}: the lock's release went unanswered until its lease ran out: left to expire with it",
                self.folder
            ),
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

    /// A lease of `length` held through `held`, ours for `left` from now.
    fn lease(held: impl HeldLock + 'static, length: Duration, left: Duration) -> Arc<Lease> {
        Arc::new(Lease {
            held: Arc::new(held),
            holder: Holder {
                host: "h".into(),
                machine: "m".into(),
                pid: 1,
                command: "c".into(),
                started_at: now(),
                expires_at: now() + left.as_secs(),
                acquisition: acquisition(),
            },
            length,
            known: std::sync::Mutex::new(Known {
                ours_until: Instant::now() + left,
                written_expiry: now() + left.as_secs(),
            }),
            lost: AtomicBool::new(false),
        })
    }

    /// A lease of 8 s, last written 2 s ago. A commit's renewal takes 4 s and renews it; the
    /// renewer's, started just after, waits its turn and takes 2 s more, ending 6 s in: within
    /// the lease just renewed, though past the one it saw when it started. The lock is not lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_renewal_is_judged_by_the_lease_as_it_stands_when_it_ends() {
        let length = Duration::from_secs(8);
        let script = [Duration::from_secs(4), Duration::from_secs(2)];
        let held = Scripted(tokio::sync::Mutex::new(script.into()));
        let lease = lease(held, length, length - Duration::from_secs(2));
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

    /// A held lock whose release is never answered (a store out of reach).
    struct Unanswered;

    impl HeldLock for Unanswered {
        fn refresh(&self, _holder: Bytes) -> BoxFuture<'_, std::io::Result<()>> {
            async { Ok(()) }.boxed()
        }

        fn needs_refresh(&self) -> bool {
            true
        }

        fn release(&self) -> BoxFuture<'_, std::io::Result<()>> {
            futures::future::pending().boxed()
        }
    }

    /// A release that goes unanswered ends when the lease runs out, not never: the lock is then
    /// anyone's anyway.
    #[tokio::test]
    async fn an_unanswered_release_is_given_up_when_the_lease_runs_out() {
        let length = Duration::from_millis(800);
        let lock = FolderLock {
            lease: lease(Unanswered, length, length / 2),
            renewer: None,
            folder: "f".into(),
            released: false,
        };
        let released = tokio::time::timeout(Duration::from_secs(60), lock.release()).await;
        assert!(
            released.is_ok(),
            "the release was still waiting after a minute"
        );
    }

    /// A store that, at each of the first `times` take-overs, lets go of the lock seen and (if
    /// `then`) puts another holder's lock in its place right after (a run taking it in
    /// between); the take-over then finds no lock, as S3's 404 says.
    struct LetGo {
        inner: crate::io::MemoryDir,
        then: Option<Vec<u8>>,
        times: u32,
        takeovers: std::sync::atomic::AtomicU32,
    }

    impl Destination for LetGo {
        fn create(
            &self,
            rel: &str,
        ) -> BoxFuture<'_, std::io::Result<Box<dyn crate::io::ObjectWriter>>> {
            self.inner.create(rel)
        }
        fn read_small(&self, rel: &str) -> BoxFuture<'_, std::io::Result<Option<Vec<u8>>>> {
            self.inner.read_small(rel)
        }
        fn uri(&self, rel: &str) -> String {
            self.inner.uri(rel)
        }
        fn list(&self, prefix: &str) -> BoxFuture<'_, std::io::Result<Vec<crate::io::Listed>>> {
            self.inner.list(prefix)
        }
        fn children(&self, prefix: &str) -> BoxFuture<'_, std::io::Result<Vec<String>>> {
            self.inner.children(prefix)
        }
        fn open(
            &self,
            rel: &str,
        ) -> BoxFuture<'_, std::io::Result<Box<dyn crate::io::ChunkSource>>> {
            self.inner.open(rel)
        }
        fn delete(&self, rel: &str) -> BoxFuture<'_, std::io::Result<()>> {
            self.inner.delete(rel)
        }
        fn lock(
            &self,
            rel: &str,
            holder: Bytes,
            take_over: Option<String>,
        ) -> BoxFuture<'_, std::io::Result<LockAttempt>> {
            let rel = rel.to_owned();
            async move {
                if take_over.is_some() {
                    let n = self.takeovers.fetch_add(1, Ordering::SeqCst);
                    if n < self.times {
                        // Let go of by its holder; the take-over finds nothing (S3: 404, then a
                        // read finding none); another run then creates it, if `then`.
                        self.inner.delete(&rel).await?;
                        if let Some(then) = &self.then {
                            self.inner.put(&rel, then.clone());
                        }
                        return Ok(LockAttempt::Released);
                    }
                }
                self.inner.lock(&rel, holder, take_over).await
            }
            .boxed()
        }
        fn clean_up(&self, owned: fn(&str) -> bool) -> BoxFuture<'_, std::io::Result<u64>> {
            self.inner.clean_up(owned)
        }
    }

    fn holder_json(pid: u32, expires_at: u64) -> Vec<u8> {
        serde_json::to_vec(&Holder {
            host: "elsewhere".into(),
            machine: String::new(),
            pid,
            command: "run".into(),
            started_at: now().saturating_sub(7200),
            expires_at,
            acquisition: format!("other-{pid}"),
        })
        .unwrap()
    }

    fn let_go(then: Option<Vec<u8>>, times: u32) -> LetGo {
        let dest = LetGo {
            inner: crate::io::MemoryDir::default(),
            then,
            times,
            takeovers: Default::default(),
        };
        dest.inner.put(LOCK, holder_json(42, now() - 3600));
        dest
    }

    /// A stale lock let go of just before its take-over is taken afresh.
    #[tokio::test]
    async fn a_stale_lock_let_go_before_its_takeover_is_created_afresh() {
        let dest = let_go(None, 1);
        let lock = FolderLock::acquire(&dest, &LockOptions::default())
            .await
            .expect("taken");
        assert_eq!(dest.takeovers.load(Ordering::SeqCst), 1);
        let now: Holder = serde_json::from_slice(&dest.inner.get(LOCK).unwrap()).unwrap();
        assert_eq!(now.pid, std::process::id());
        lock.release().await;
    }

    /// A stale lock let go of, and a live run taking the lock before this run's new create:
    /// the live run keeps it, with `--break-lock` too (which breaks the lock of the holder
    /// seen, not of whoever holds it next).
    #[tokio::test]
    async fn a_live_run_that_took_the_lock_in_between_keeps_it() {
        for break_lock in [false, true] {
            let live = holder_json(7, now() + 3600);
            let dest = let_go(Some(live.clone()), 1);
            let opts = LockOptions {
                break_lock,
                ..LockOptions::default()
            };
            let err = FolderLock::acquire(&dest, &opts)
                .await
                .err()
                .expect("refused");
            assert!(matches!(err, FolderError::Locked { .. }), "{err}");
            assert!(err.to_string().contains("pid 7"), "{err}");
            assert_eq!(dest.inner.get(LOCK).unwrap().to_vec(), live, "{err}");
            assert_eq!(dest.takeovers.load(Ordering::SeqCst), 1);
        }
    }

    /// Let go of at every take-over and another stale lock put in its place each time, the
    /// taking stops after [`TAKEOVERS`] take-overs, saying so.
    #[tokio::test]
    async fn a_lock_let_go_at_every_takeover_is_tried_a_bounded_number_of_times() {
        let dest = let_go(Some(holder_json(9, now() - 3600)), u32::MAX);
        let err = FolderLock::acquire(&dest, &LockOptions::default())
            .await
            .err()
            .expect("refused");
        assert_eq!(dest.takeovers.load(Ordering::SeqCst), TAKEOVERS);
        assert!(
            err.to_string().contains("let go of and taken again"),
            "{err}"
        );
    }

    #[test]
    fn no_two_takings_are_named_alike() {
        let names: std::collections::HashSet<String> = (0..1000).map(|_| acquisition()).collect();
        assert_eq!(names.len(), 1000);
    }
}
