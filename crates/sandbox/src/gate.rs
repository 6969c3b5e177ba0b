//! Bounds how many sandbox shells are being launched at once, first come first served.
//!
//! A launch is mount work: `unshare --mount` copies the mount table, `mount -t overlay`, and
//! bubblewrap's ~40 mount calls (binds, read-only remounts, /proc, /dev, pivot_root). Each of
//! them takes the kernel's one system-wide mount lock (`namespace_sem`). With hundreds of
//! launches at once on a 2-core machine, they queue on that lock inside the kernel, and a
//! lock holder that is preempted by the other runnable processes holds up the whole queue: a
//! launch that takes 30 ms alone took over 30 s (bubblewrap in `D` state in
//! `do_lock_mount`) and ran into the startup deadline. The gate keeps that queue short and
//! does the waiting here instead, where it costs nothing and is not charged to the launch's
//! startup deadline.

use std::sync::{Condvar, Mutex};

/// A FIFO counting semaphore for launches.
#[derive(Debug)]
pub(crate) struct LaunchGate {
    capacity: usize,
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// The ticket the next caller of `enter` gets.
    next_ticket: u64,
    /// The ticket admitted next (tickets are admitted in order).
    next_admitted: u64,
    /// Launches holding a permit now.
    active: usize,
    /// The most launches that ever held a permit at once.
    peak: usize,
}

/// One launch's permit; dropping it lets the next launch in.
#[derive(Debug)]
pub(crate) struct LaunchPermit<'g> {
    gate: &'g LaunchGate,
}

impl LaunchGate {
    /// A gate admitting at most `capacity` (at least 1) launches at once.
    pub fn new(capacity: usize) -> LaunchGate {
        LaunchGate {
            capacity: capacity.max(1),
            state: Mutex::new(GateState::default()),
            changed: Condvar::new(),
        }
    }

    /// The default size: two launches per core, so the CPUs are kept busy while one launch
    /// waits for the mount lock, but the kernel's queue stays a few launches long.
    pub fn default_capacity() -> usize {
        2 * std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Waits for a free slot (in the order of arrival) and takes it.
    pub fn enter(&self) -> LaunchPermit<'_> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while !(ticket == state.next_admitted && state.active < self.capacity) {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.next_admitted += 1;
        state.active += 1;
        state.peak = state.peak.max(state.active);
        drop(state);
        // The next ticket may be admissible too.
        self.changed.notify_all();
        LaunchPermit { gate: self }
    }

    /// The most launches that held a permit at once so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn peak(&self) -> usize {
        self.lock().peak
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is a few counters updated atomically under the lock: still consistent
        // after a panic elsewhere.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for LaunchPermit<'_> {
    fn drop(&mut self) {
        self.gate.lock().active -= 1;
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn at_most_capacity_launches_hold_a_permit() {
        let gate = LaunchGate::new(3);
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..32 {
                s.spawn(|| {
                    let _permit = gate.enter();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    inside.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert!(gate.peak() <= 3);
        assert_eq!(gate.lock().active, 0);
        assert_eq!(gate.lock().next_admitted, 32);
    }

    #[test]
    fn permits_are_granted_in_order_of_arrival() {
        let gate = LaunchGate::new(1);
        let order = Mutex::new(Vec::new());
        let first = gate.enter();
        std::thread::scope(|s| {
            for i in 0..8 {
                let (gate, order) = (&gate, &order);
                // Each waiter has taken its ticket before the next thread starts.
                s.spawn(move || {
                    let _permit = gate.enter();
                    order.lock().unwrap().push(i);
                });
                while gate.lock().next_ticket < i as u64 + 2 {
                    std::thread::yield_now();
                }
            }
            drop(first);
        });
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn zero_capacity_still_admits_one() {
        let gate = LaunchGate::new(0);
        assert_eq!(gate.capacity(), 1);
        drop(gate.enter());
        drop(gate.enter());
    }
}
