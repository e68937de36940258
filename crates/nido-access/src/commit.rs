//! Group commit for the UDP driver: the committer thread and the replies
//! that wait for it (issue #11).
//!
//! The network's writes collect in a [`Stage`]; one committer thread
//! commits whatever accumulated while its last commit ran (one
//! transaction, at most [`nido_net::stage::MAX_GROUP`] writes) and then
//! sends the replies whose writes that made durable. A reply whose writes
//! are already durable when it is produced goes out at once, unless older
//! replies still wait (order is kept).
//!
//! # Invariants
//! - A reply leaves only once [`Stage::release`] says its tag is durable.
//! - A group that fails is retried while the store is unavailable (with
//!   back-off, up to [`CommitOptions::give_up_after`]); then, or at once for
//!   any other failure, it is abandoned ([`Stage::abandon`]): every waiting
//!   reply is dropped, and the driver forgets its UE contexts at its next
//!   round, as after a crash.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nido_net::stage::Tag;
use nido_net::{Stage, StoreError};

/// How the committer retries.
#[derive(Debug, Clone, Copy)]
pub struct CommitOptions {
    /// The first wait before retrying a group the store could not take
    /// (doubling up to one second).
    pub retry: Duration,
    /// How long a group is retried while the store is unavailable before
    /// it is abandoned.
    pub give_up_after: Duration,
    /// How long the committer lets writes gather once the first is
    /// pending, before it commits them as one group. Each group costs a
    /// transaction (BEGIN, a statement per kind of write, COMMIT, a WAL
    /// sync), so under load larger groups cost less CPU per write; each
    /// reply that waits for a write waits up to this much longer. 4 ms
    /// (`nido network serve --commit-gather-us`).
    pub gather: Duration,
}

impl Default for CommitOptions {
    fn default() -> Self {
        Self {
            retry: Duration::from_millis(50),
            give_up_after: Duration::from_secs(10),
            gather: Duration::from_millis(4),
        }
    }
}

/// What the committer did.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Groups committed.
    pub groups: AtomicU64,
    /// Writes committed.
    pub writes: AtomicU64,
    /// Microseconds spent in commits.
    pub commit_us: AtomicU64,
    /// Replies that waited for a commit.
    pub held: AtomicU64,
    /// Replies dropped because their group was abandoned.
    pub dropped: AtomicU64,
    /// Groups abandoned.
    pub abandoned: AtomicU64,
    /// Datagrams received by the drivers that send through this gate, as
    /// they go (published once per round; [`crate::network::ServeStats`]
    /// has the final count).
    pub received: AtomicU64,
    /// Datagrams sent, as they go.
    pub sent: AtomicU64,
}

/// Called after each group commit with its duration and its writes (a
/// metrics recorder).
pub type CommitObserver = Arc<dyn Fn(Duration, usize) + Send + Sync>;

/// Replies that wait for their writes, in the order they were produced.
#[derive(Default)]
struct Held {
    queue: VecDeque<(Tag, SocketAddr, Vec<u8>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The replies' gate: the driver hands every reply to it; the committer
/// thread opens it after each commit.
#[derive(Clone)]
pub struct Gate {
    stage: Stage,
    held: Arc<Mutex<Held>>,
    /// Where replies go; `None` for a [`Gate::detached`] gate.
    socket: Option<Arc<UdpSocket>>,
    stats: Arc<CommitStats>,
    observer: Arc<std::sync::OnceLock<CommitObserver>>,
}

impl core::fmt::Debug for Gate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gate")
            .field("stage", &self.stage)
            .field("held", &lock(&self.held).queue.len())
            .finish()
    }
}

impl Gate {
    /// A gate for replies sent on `socket` once `stage` made them durable.
    pub fn new(stage: Stage, socket: Arc<UdpSocket>) -> Self {
        Self::with_socket(stage, Some(socket))
    }

    /// A gate that holds no replies of its own, for a [`Committer`] that
    /// commits a stage whose drivers release their messages themselves
    /// ([`Stage::release`], [`Stage::flush`]: the simulator's fleets in
    /// `nido demo`), so the database works while they do. Replies handed
    /// to it ([`Gate::send_all`]) are dropped once durable.
    pub fn detached(stage: Stage) -> Self {
        Self::with_socket(stage, None)
    }

    fn with_socket(stage: Stage, socket: Option<Arc<UdpSocket>>) -> Self {
        Self {
            stage,
            held: Arc::new(Mutex::new(Held::default())),
            socket,
            stats: Arc::new(CommitStats::default()),
            observer: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Puts `datagrams` on the wire, together (lost datagrams are the
    /// link's business: timers recover).
    fn transmit(&self, datagrams: &[(SocketAddr, Vec<u8>)]) {
        if let Some(socket) = &self.socket
            && !datagrams.is_empty()
        {
            let _ = crate::batch_io::send_all(socket, datagrams);
        }
    }

    /// The stage.
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// The committer's counts.
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Sets the observer of group commits (once; later calls are ignored).
    pub fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.observer.set(observer);
    }

    /// Adds `received` and `sent` datagrams to the live counts.
    pub fn count_traffic(&self, received: u64, sent: u64) {
        self.stats.received.fetch_add(received, Ordering::Relaxed);
        self.stats.sent.fetch_add(sent, Ordering::Relaxed);
    }

    /// Sends `datagrams` (replies produced together: a driver's round) to
    /// their addresses once the writes of `tag` are durable: now, in one
    /// batch, if they are and nothing older waits; else after the commit
    /// that makes them so. Returns whether they were sent now.
    pub fn send_all(&self, tag: Tag, datagrams: Vec<(SocketAddr, Vec<u8>)>) -> bool {
        let mut held = lock(&self.held);
        match self.stage.release(tag) {
            None => {
                self.stats
                    .dropped
                    .fetch_add(datagrams.len() as u64, Ordering::Relaxed);
                false
            }
            Some(true) if held.queue.is_empty() => {
                // Nothing older waits: these need no lock to keep their
                // order (a driver's next replies come after this call).
                drop(held);
                self.transmit(&datagrams);
                true
            }
            Some(_) => {
                self.stats
                    .held
                    .fetch_add(datagrams.len() as u64, Ordering::Relaxed);
                held.queue
                    .extend(datagrams.into_iter().map(|(to, d)| (tag, to, d)));
                false
            }
        }
    }

    /// Sends every waiting reply whose writes are durable, in order (in
    /// batches); drops those whose group was abandoned. Returns how many
    /// were sent.
    pub fn open(&self) -> usize {
        let mut held = lock(&self.held);
        let mut ready = Vec::new();
        while let Some((tag, _, _)) = held.queue.front() {
            match self.stage.release(*tag) {
                Some(true) => {
                    if let Some((_, to, datagram)) = held.queue.pop_front() {
                        ready.push((to, datagram));
                    }
                }
                Some(false) => break,
                None => {
                    held.queue.pop_front();
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Sent under the lock: a reply produced meanwhile, whose writes are
        // durable, must not overtake these.
        self.transmit(&ready);
        ready.len()
    }

    /// Replies waiting for a commit.
    pub fn waiting(&self) -> usize {
        lock(&self.held).queue.len()
    }

    /// Commits one group and opens the gate; what the committer thread
    /// loops on. `Err` only for a group that was abandoned.
    pub fn commit_once(&self, options: &CommitOptions) -> Result<usize, StoreError> {
        let started = Instant::now();
        let mut wait = options.retry;
        loop {
            match self.stage.commit() {
                Ok(done) => {
                    if done.writes > 0 {
                        self.stats.groups.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .writes
                            .fetch_add(done.writes as u64, Ordering::Relaxed);
                        self.stats
                            .commit_us
                            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        if let Some(observe) = self.observer.get() {
                            observe(started.elapsed(), done.writes);
                        }
                    }
                    self.open();
                    return Ok(done.writes);
                }
                Err(StoreError::Unavailable(e)) if started.elapsed() < options.give_up_after => {
                    tracing::warn!(error = %e, "group commit failed; retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "group commit abandoned: replies that waited for it are dropped, UE contexts forgotten"
                    );
                    self.stage.abandon();
                    self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
                    self.open();
                    return Err(e);
                }
            }
        }
    }
}

/// The committer thread: commits while `stop` is not set, then what is
/// left, and returns.
pub struct Committer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for Committer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts committing `gate`'s stage.
    pub fn start(gate: Gate, options: CommitOptions) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nido-commit".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    gate.stage().wait_for_writes(Duration::from_millis(20));
                    // Gather, unless a full group already waits.
                    let pending = gate.stage().pending();
                    if !options.gather.is_zero()
                        && pending > 0
                        && pending < nido_net::stage::MAX_GROUP
                    {
                        std::thread::sleep(options.gather);
                    }
                    let _ = gate.commit_once(&options);
                }
                // What the network wrote before it stopped, and its replies.
                while gate.stage().pending() > 0 {
                    if gate.commit_once(&options).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Commits what is pending and stops.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
