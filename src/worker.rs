//! A thread that does one job at a time for the engine task, with a one-slot queue.
//!
//! The engine task must never wait: [`Worker::submit`] hands a job over only if the
//! previous one is done, and says so; the caller tries again later. Used for checkpoints
//! (`store.rs`) and the appraisal gauges (`appraiser.rs`).
//!
//! Owns: the thread and its slot. Must not: know what the jobs are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Worker<J> {
    name: &'static str,
    jobs: Option<SyncSender<J>>,
    busy: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Send + 'static> Worker<J> {
    /// Starts the thread `name`, which runs `work` on each job handed over.
    pub fn start(
        name: &'static str,
        mut work: impl FnMut(J) + Send + 'static,
    ) -> std::io::Result<Worker<J>> {
        let (jobs, rx) = sync_channel::<J>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let done = busy.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in rx {
                    work(job);
                    done.store(false, Ordering::Release);
                }
            })?;
        Ok(Worker {
            name,
            jobs: Some(jobs),
            busy,
            thread: Some(thread),
        })
    }
}

impl<J> Worker<J> {
    /// Whether a job is being worked on.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Blocks until the job in progress, if any, is done.
    pub fn wait_idle(&self) {
        while self.is_busy() && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Hands a job over; `false` when the previous one is still being worked on.
    pub fn submit(&self, job: J) -> bool {
        let Some(jobs) = &self.jobs else {
            return false;
        };
        if self.busy.swap(true, Ordering::AcqRel) {
            return false;
        }
        if jobs.try_send(job).is_err() {
            self.busy.store(false, Ordering::Release);
            return false;
        }
        true
    }

    /// Lets the job in progress finish, then stops the thread.
    pub fn finish(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(thread = self.name, "a worker thread panicked");
            }
        }
    }
}

impl<J> Drop for Worker<J> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn one_job_at_a_time_and_finish_waits_for_it() {
        let (gate_tx, gate) = channel::<()>();
        let (done_tx, done) = channel::<u32>();
        let gate = std::sync::Mutex::new(gate);
        let mut w = Worker::start("test-worker", move |j: u32| {
            let _ = gate.lock().map(|g| g.recv());
            let _ = done_tx.send(j);
        })
        .expect("thread");
        assert!(!w.is_busy());
        assert!(w.submit(1));
        assert!(w.is_busy());
        assert!(!w.submit(2), "refused while the first is running");
        gate_tx.send(()).expect("gate");
        assert_eq!(done.recv().ok(), Some(1));
        w.wait_idle();
        assert!(!w.is_busy());
        assert!(w.submit(3));
        gate_tx.send(()).expect("gate");
        w.finish();
        assert_eq!(done.try_iter().collect::<Vec<_>>(), vec![3]);
        assert!(!w.submit(4), "nothing is taken after finish");
    }
}
