//! Who is waiting for which approval, so a change wakes only its own waiters and the fallback
//! poll costs one small query per interval for all of them.
//!
//! [`crate::Store::wait_for_change`] registers its approval id here. A change made through this
//! store, or announced by another replica (PostgreSQL `NOTIFY`), wakes the waiters of that id
//! only. For changes nobody announces (another process on the same SQLite file, a listener
//! reconnecting) one poller per store reads the states of all waited-for approvals every poll
//! interval (`SELECT id, state ... WHERE id IN (...)`) and wakes the ids whose state moved. With
//! a thousand held callers that is one query every few seconds instead of a thousand full-row
//! reads (docs/BENCHMARKS.md, "Approvals").

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::ApprovalState;

/// The waiters of one approval.
struct Entry {
    /// Bumped on every wake; each waiter holds a receiver.
    wake: watch::Sender<u64>,
    /// Registrations alive for this id.
    count: usize,
    /// The state last known to the poller (or to the first waiter).
    known: ApprovalState,
}

/// The registry (one per store).
#[derive(Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<String, Entry>>,
}

/// A waiter's registration: wakes arrive on `rx`; dropping it unregisters.
pub(crate) struct Registration<'a> {
    waiters: &'a Waiters,
    id: String,
    pub(crate) rx: watch::Receiver<u64>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        if let Some(entry) = map.get_mut(&self.id) {
            entry.count -= 1;
            if entry.count == 0 {
                map.remove(&self.id);
            }
        }
    }
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a waiter for `id`, which it last saw in state `seen`.
    pub(crate) fn register(&self, id: &str, seen: ApprovalState) -> Registration<'_> {
        let mut map = self.lock();
        let entry = map.entry(id.to_owned()).or_insert_with(|| Entry {
            wake: watch::Sender::new(0),
            count: 0,
            known: seen,
        });
        entry.count += 1;
        let rx = entry.wake.subscribe();
        drop(map);
        Registration {
            waiters: self,
            id: id.to_owned(),
            rx,
        }
    }

    /// Wakes the waiters of `id` (if any).
    pub(crate) fn wake(&self, id: &str) {
        if let Some(entry) = self.lock().get(id) {
            entry.wake.send_modify(|n| *n += 1);
        }
    }

    /// Wakes every waiter (after notifications may have been lost).
    pub(crate) fn wake_all(&self) {
        for entry in self.lock().values() {
            entry.wake.send_modify(|n| *n += 1);
        }
    }

    /// The ids being waited for.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Takes the poller's reading: wakes the ids whose state differs from the known one, and
    /// the ids that no longer exist.
    pub(crate) fn polled(&self, ids: &[String], states: &[(String, ApprovalState)]) {
        let states: HashMap<&str, ApprovalState> =
            states.iter().map(|(id, s)| (id.as_str(), *s)).collect();
        let mut map = self.lock();
        for id in ids {
            let Some(entry) = map.get_mut(id) else {
                continue;
            };
            match states.get(id.as_str()) {
                Some(state) if *state == entry.known => {}
                Some(state) => {
                    entry.known = *state;
                    entry.wake.send_modify(|n| *n += 1);
                }
                None => entry.wake.send_modify(|n| *n += 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_reach_only_their_id_and_registrations_clean_up() {
        let w = Waiters::default();
        let mut a = w.register("a", ApprovalState::Pending);
        let mut b = w.register("b", ApprovalState::Pending);
        w.wake("a");
        assert!(a.rx.has_changed().unwrap());
        assert!(!b.rx.has_changed().unwrap());
        a.rx.mark_unchanged();
        // The poller wakes only what moved (and what vanished).
        w.polled(
            &["a".into(), "b".into()],
            &[("a".into(), ApprovalState::Pending)],
        );
        assert!(!a.rx.has_changed().unwrap());
        assert!(b.rx.has_changed().unwrap());
        b.rx.mark_unchanged();
        w.polled(&["a".into()], &[("a".into(), ApprovalState::Approved)]);
        assert!(a.rx.has_changed().unwrap());
        drop(a);
        let mut ids = w.ids();
        ids.sort();
        assert_eq!(ids, vec!["b".to_string()]);
        drop(b);
        assert!(w.ids().is_empty());
    }
}
