//! [`CpuBurners`]: CPU load for a test whose guarantee must hold on a busy machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

/// One spinning thread per core, at the test's own priority, for as long as a handle lives.
/// Tests of one binary running at once share the same threads (one per core in all, not per
/// test); the last handle dropped stops and joins them, so a failing test stops them too.
pub struct CpuBurners(Arc<Burners>);

struct Burners {
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<u64>>>,
}

static SHARED: Mutex<Weak<Burners>> = Mutex::new(Weak::new());

impl CpuBurners {
    pub fn start() -> CpuBurners {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = shared.upgrade() {
            return CpuBurners(b);
        }
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                    x
                })
            })
            .collect();
        let b = Arc::new(Burners {
            stop,
            threads: Mutex::new(threads),
        });
        *shared = Arc::downgrade(&b);
        CpuBurners(b)
    }

    /// How many threads spin.
    pub fn threads(&self) -> usize {
        self.0.threads.lock().map_or(0, |t| t.len())
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(self.threads.get_mut().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}
