//! A thread that is told to stop and then joined, without the join waiting behind another
//! CPU's work.
//!
//! The scheduler queues a woken thread on the CPU it last ran on. When a task it cannot
//! preempt runs there, it waits up to a time slice (1–4.7 ms measured here), while the
//! joining thread's own CPU goes idle as soon as it blocks in the join: an idle CPU does not
//! pull a task that ran elsewhere just before. So the thread is first moved to the joining
//! thread's CPU, which it gets the moment the join blocks (bench/README.md, shutdown).
//!
//! The move needs the thread's own tid, known to be live: glibc's `pthread_setaffinity_np`
//! on a thread that has exited but not been joined acts on the *caller* (the tid it holds
//! is then 0), and a tid stored elsewhere may belong to another task once the thread is
//! gone. The thread records its tid under a lock and clears it, under the same lock, before
//! it ends; the joiner moves it only while holding that lock and seeing the tid.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{Builder, JoinHandle};

use rustix::process::Pid;
use rustix::thread::{gettid, sched_getcpu, sched_setaffinity, CpuSet};

type Tid = Arc<Mutex<Option<Pid>>>;

pub struct Stoppable {
    handle: JoinHandle<()>,
    tid: Tid,
}

/// Clears the tid when the thread's function ends, by returning or unwinding.
struct Ending(Tid);

impl Drop for Ending {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

fn lock(tid: &Tid) -> MutexGuard<'_, Option<Pid>> {
    tid.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stoppable {
    pub fn spawn(builder: Builder, f: impl FnOnce() + Send + 'static) -> io::Result<Stoppable> {
        let tid: Tid = Arc::new(Mutex::new(None));
        let theirs = Arc::clone(&tid);
        let handle = builder.spawn(move || {
            *lock(&theirs) = Some(gettid());
            let _ending = Ending(theirs);
            f();
        })?;
        Ok(Stoppable { handle, tid })
    }

    /// Joins the thread (already told to stop), moved first to the calling thread's CPU if it
    /// still runs. Only a hint: where the move is refused (a CPU set that excludes this CPU)
    /// the join is as before. Joining from the thread itself detaches it instead.
    pub fn join_here(self) {
        if self.handle.thread().id() == std::thread::current().id() {
            return;
        }
        {
            let tid = lock(&self.tid);
            let cpu = sched_getcpu();
            if let Some(tid) = *tid {
                if cpu < CpuSet::MAX_CPU {
                    let mut set = CpuSet::new();
                    set.set(cpu);
                    let _ = sched_setaffinity(Some(tid), &set);
                }
            }
        }
        let _ = self.handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::thread::sched_getaffinity;
    use std::sync::mpsc;

    fn cpus_of_this_thread() -> usize {
        let set = sched_getaffinity(None).unwrap();
        (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).count()
    }

    #[test]
    fn joining_a_thread_that_already_ended_leaves_the_joiner_where_it_may_run() {
        let before = cpus_of_this_thread();
        let (tx, rx) = mpsc::channel();
        let t = Stoppable::spawn(Builder::new(), move || tx.send(()).unwrap()).unwrap();
        rx.recv().unwrap();
        // Ended (or about to): its tid is cleared before the thread goes.
        while lock(&t.tid).is_some() {
            std::thread::yield_now();
        }
        t.join_here();
        assert_eq!(
            cpus_of_this_thread(),
            before,
            "the joiner's own CPU set is untouched"
        );
    }

    #[test]
    fn a_running_thread_is_moved_to_the_joiners_cpu_and_joined() {
        let (stop, stopped) = mpsc::channel::<()>();
        let (seen_tx, seen_rx) = mpsc::channel();
        let t = Stoppable::spawn(Builder::new(), move || {
            let _ = stopped.recv();
            seen_tx.send(cpus_of_this_thread()).unwrap();
        })
        .unwrap();
        let tid = loop {
            if let Some(tid) = *lock(&t.tid) {
                break tid;
            }
            std::thread::yield_now();
        };
        let before = cpus_of_this_thread();
        // Told to stop once it has been moved (join_here blocks in the join meanwhile).
        let teller = std::thread::spawn(move || {
            let moved = |s: CpuSet| (0..CpuSet::MAX_CPU).filter(|&c| s.is_set(c)).count() == 1;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !sched_getaffinity(Some(tid)).is_ok_and(moved)
                && std::time::Instant::now() < deadline
            {
                std::thread::yield_now();
            }
            drop(stop);
        });
        t.join_here();
        teller.join().unwrap();
        assert_eq!(
            seen_rx.recv().unwrap(),
            1,
            "it ran its last steps on one CPU ({before} before)"
        );
        assert_eq!(
            cpus_of_this_thread(),
            before,
            "the joiner's own CPU set is untouched"
        );
    }
}
