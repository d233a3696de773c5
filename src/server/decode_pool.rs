//! The decode pool: a fixed set of `limits.max_decoding` threads that decompress, parse
//! and scrub request bodies too large or too costly for the async workers. Jobs wait in
//! a queue; the async task awaits its answer. A fixed set of threads also keeps the
//! allocator's per-thread caches bounded: the large buffers of decoding are only ever
//! allocated on these threads.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The pool; dropping it lets its threads end once the queue is empty.
#[derive(Debug)]
pub struct DecodePool {
    jobs: mpsc::Sender<Job>,
}

impl DecodePool {
    /// Starts `threads` (at least one) named `scrubgate-decode`.
    ///
    /// # Panics
    ///
    /// When the operating system refuses to start a thread.
    pub fn new(threads: usize) -> DecodePool {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name("scrubgate-decode".into())
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .expect("the decode pool's threads start");
        }
        DecodePool { jobs }
    }

    /// Runs `work` on the pool and returns its result. A panic in `work` is resumed in
    /// the caller, as if it had run there; the pool's thread lives on.
    pub async fn run<T, F>(&self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<T, Box<dyn Any + Send>>>();
        let job: Job = Box::new(move || {
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        });
        self.jobs
            .send(job)
            .expect("the decode pool lives as long as the server state");
        match answer.await {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => panic!("a decode job was dropped unanswered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_on_at_most_the_pools_threads() {
        let pool = Arc::new(DecodePool::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for n in 0..16 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(std::thread::current().name(), Some("scrubgate-decode"));
                    n * 2
                })
                .await
            }));
        }
        let mut sum = 0;
        for task in tasks {
            sum += task.await.unwrap();
        }
        assert_eq!(sum, (0..16).map(|n| n * 2).sum::<i32>());
        assert!(most.load(Ordering::SeqCst) <= 2);
    }

    #[tokio::test]
    async fn a_panic_reaches_the_caller_and_the_pool_goes_on() {
        let pool = Arc::new(DecodePool::new(1));
        let task = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| panic!("boom")).await })
        };
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(pool.run(|| 7).await, 7);
    }
}
