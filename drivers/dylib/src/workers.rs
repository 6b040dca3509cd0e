//! The threads library calls run on: plain OS threads, kept while they have
//! work and ended after a while idle, one more started whenever none is
//! free. A call that never returns keeps its thread and nothing else: the
//! caller's deadline fires (the future waiting for the answer is dropped),
//! later calls run on other threads, and neither the async runtime nor its
//! shutdown waits for it (tokio's blocking pool would wait at shutdown).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A unit of work.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The idle threads: an id each, and the way to hand it a job.
type Idle = Mutex<Vec<(u64, Sender<Job>)>>;

/// How long a thread waits for work before it ends.
const IDLE: Duration = Duration::from_secs(10);

/// The idle threads, each reachable through its own channel.
#[derive(Clone, Default)]
pub(crate) struct Workers {
    idle: Arc<Idle>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Workers {
    /// Runs `f` on an idle thread, or on a new one; its result comes back
    /// through the returned receiver (an error if the thread could not start).
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, std::io::Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut job: Job = Box::new(move || {
            // The caller may have stopped waiting (a deadline): nothing to do then.
            let _ = tx.send(f());
        });
        loop {
            let taken = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let Some((_, worker)) = taken else { break };
            // A thread that ended after taking itself off the list cannot be
            // on it, so a send fails only if it panicked: try the next one.
            match worker.send(job) {
                Ok(()) => return Ok(rx),
                Err(mpsc::SendError(back)) => job = back,
            }
        }
        self.start(job)?;
        Ok(rx)
    }

    /// A new thread that runs `first`, then waits for more.
    fn start(&self, first: Job) -> Result<(), std::io::Error> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Job>();
        let idle = self.idle.clone();
        std::thread::Builder::new().name("cnm-dylib".into()).spawn(move || {
            let mut job = first;
            loop {
                job();
                idle.lock().unwrap_or_else(PoisonError::into_inner).push((id, tx.clone()));
                job = loop {
                    match rx.recv_timeout(IDLE) {
                        Ok(next) => break next,
                        Err(RecvTimeoutError::Timeout) => {
                            let mut list = idle.lock().unwrap_or_else(PoisonError::into_inner);
                            match list.iter().position(|(i, _)| *i == id) {
                                // Still idle: off the list, and end.
                                Some(at) => {
                                    list.swap_remove(at);
                                    return;
                                }
                                // Taken off by a caller that is sending a job now.
                                None => continue,
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                };
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_never_returns_holds_only_its_own_thread() {
        let workers = Workers::default();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hung = workers.run(move || hold.recv().is_ok()).unwrap();
        for i in 0..3 {
            assert_eq!(workers.run(move || i * 2).unwrap().await.unwrap(), i * 2);
        }
        release.send(()).unwrap();
        assert!(hung.await.unwrap());
    }
}
