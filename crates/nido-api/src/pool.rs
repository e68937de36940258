//! The API's store handles: [`nido_store::SqlStore`] blocks on a runtime of
//! its own and refuses to run inside tokio, so the API's handlers hand each
//! store call to a few plain threads that own a handle each, and await the
//! answer.
//!
//! Invariant: a handler never blocks a tokio worker on the database; a
//! queue of at most [`QUEUE`] calls waits for the handles, past it the
//! caller gets [`PoolError::Busy`] (503) at once.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use nido_store::SqlStore;

/// Calls that may wait for a handle.
pub const QUEUE: usize = 256;

/// Opens a store handle (each thread of the pool opens its own).
pub type OpenStore = Arc<dyn Fn() -> Result<SqlStore, String> + Send + Sync>;

type Job = Box<dyn FnOnce(&mut SqlStore) + Send>;

/// Why a store call did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every handle is busy and the queue is full.
    #[error("the store is busy; try again")]
    Busy,
    /// The pool's threads are gone (the server is stopping).
    #[error("the store is closed")]
    Closed,
}

/// A few threads, each with its own store handle.
#[derive(Clone)]
pub struct StorePool {
    jobs: mpsc::SyncSender<Job>,
}

impl StorePool {
    /// Starts `threads` threads, each opening a handle with `open`; fails
    /// if the first handle does not open.
    pub fn start(open: &OpenStore, threads: usize) -> Result<Self, String> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let store = open()?;
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("nido-api-store-{i}"))
                .spawn(move || {
                    let mut store = store;
                    loop {
                        let job = {
                            let Ok(rx) = rx.lock() else { return };
                            match rx.recv() {
                                Ok(job) => job,
                                Err(_) => return,
                            }
                        };
                        job(&mut store);
                    }
                })
                .map_err(|e| e.to_string())?;
        }
        Ok(Self { jobs: tx })
    }

    /// Runs `f` on a handle and returns its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqlStore) -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = tx.send(f(store));
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => PoolError::Busy,
            mpsc::TrySendError::Disconnected(_) => PoolError::Closed,
        })?;
        rx.await.map_err(|_| PoolError::Closed)
    }
}
