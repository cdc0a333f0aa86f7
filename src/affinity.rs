//! Keeping helper threads off the processor of the thread whose order they serve.
//!
//! `import` decides events in order on one thread, with helpers around it: one reads the
//! scratch files back ahead of it, two seal and commit its batches behind it. On this
//! machine's 2 processors the helpers' work fits on the processor the deciding thread leaves,
//! but the scheduler, left free, moves all four between both processors: 234 and 634
//! migrations in two imports of 1,000,000 events. So the reading and sealing threads keep,
//! from their start, to the processors other than the one the deciding thread ran on when it
//! started them: with the commit thread kept too, 74 and 135 migrations, and medians of 1M
//! imports in ABBA order faster in three series of four (by 3, 6 and 18%) and slower in one
//! (by 3%), tools/bench/PROFILE.md, goal 1. The commit thread runs anywhere: its work is mostly
//! the kernel's, and kept with the others it fell behind them: the deciding thread waited 173
//! to 224 ms for commits per 1M import, against 14 to 20 ms with it free, and 3.5 to 4.3 s per
//! 10M import, against 0.01 to 1.0 s; the 1M imports took the same time within 1.5%, the 10M
//! imports 1.5 to 1.9% less. The deciding thread itself stays free, so that if other work takes
//! its processor, the scheduler can still move it. (`verify`'s two threads already stay apart,
//! with 1 to 7 migrations a run, and gained nothing measurable from this; the replay's two
//! decoding threads, which bound it, were slower sharing one processor.)
//!
//! Only speed depends on this: where a call fails, where there is one processor, or on
//! another system, every thread runs where the scheduler puts it.

/// The processors the helpers of one thread keep to; none means anywhere.
#[derive(Clone, Copy)]
pub struct Helpers {
    #[cfg(target_os = "linux")]
    processors: Option<rustix::thread::CpuSet>,
}

impl Helpers {
    /// The processors for the helpers of the calling thread: every processor this thread may
    /// run on, except the one it runs on now. Anywhere, if that leaves none.
    #[cfg(target_os = "linux")]
    pub fn of_this_thread() -> Helpers {
        use rustix::thread::{CpuSet, sched_getaffinity, sched_getcpu};
        let processors = sched_getaffinity(None).ok().and_then(|mut allowed| {
            let here = sched_getcpu();
            if here >= CpuSet::MAX_CPU || !allowed.is_set(here) {
                return None;
            }
            allowed.unset(here);
            (allowed.count() > 0).then_some(allowed)
        });
        Helpers { processors }
    }

    /// Anywhere: this system's processors are left to its scheduler.
    #[cfg(not(target_os = "linux"))]
    pub fn of_this_thread() -> Helpers {
        Helpers {}
    }

    /// Helpers that run anywhere.
    pub fn anywhere() -> Helpers {
        Helpers {
            #[cfg(target_os = "linux")]
            processors: None,
        }
    }

    /// Keeps the calling thread, a helper, to these processors from now on.
    pub fn keep_this_thread(&self) {
        #[cfg(target_os = "linux")]
        if let Some(processors) = &self.processors {
            // A failure leaves the thread where the scheduler puts it: slower, not wrong.
            let _ = rustix::thread::sched_setaffinity(None, processors);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rustix::thread::{sched_getaffinity, sched_getcpu};

    #[test]
    fn a_helper_keeps_off_the_processor_of_the_thread_that_made_it() {
        let allowed = sched_getaffinity(None).unwrap();
        // The test pins itself to one processor first, so that it knows which one it is on.
        let Some(here) = (0..rustix::thread::CpuSet::MAX_CPU).find(|cpu| allowed.is_set(*cpu))
        else {
            unreachable!("a thread may run somewhere");
        };
        std::thread::spawn(move || {
            let mut one = rustix::thread::CpuSet::new();
            one.set(here);
            rustix::thread::sched_setaffinity(None, &one).unwrap();
            assert_eq!(sched_getcpu(), here);
            let helpers = Helpers::of_this_thread();
            // Pinned to one processor, this thread may run nowhere else: its helpers go
            // anywhere rather than nowhere.
            assert!(helpers.processors.is_none());
            std::thread::spawn(move || {
                helpers.keep_this_thread();
                assert!(sched_getaffinity(None).unwrap().is_set(here));
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
        if allowed.count() < 2 {
            return;
        }
        // With the whole set: the helper keeps to every allowed processor but this one.
        let helpers = Helpers::of_this_thread();
        let processors = helpers.processors.expect("two processors or more");
        assert_eq!(processors.count() + 1, allowed.count());
        std::thread::spawn(move || {
            helpers.keep_this_thread();
            let kept = sched_getaffinity(None).unwrap();
            assert_eq!(kept.count(), processors.count());
            for cpu in 0..rustix::thread::CpuSet::MAX_CPU {
                assert_eq!(kept.is_set(cpu), processors.is_set(cpu), "processor {cpu}");
            }
        })
        .join()
        .unwrap();
    }
}
