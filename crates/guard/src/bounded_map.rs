//! A map that never holds more than a fixed number of entries, so that what an attacker makes
//! the guard remember (one entry per source or username tried) cannot grow without bound.
//! When full, the least recently touched tenth is forgotten at once (amortised: one sort per
//! tenth of the capacity inserted).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

pub struct BoundedMap<K, V> {
    entries: HashMap<K, (Instant, V)>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        BoundedMap { entries: HashMap::new(), capacity: capacity.max(10) }
    }

    /// The entry for `key`, created with `make` if absent; marks it touched at `now`.
    pub fn touch(&mut self, key: &K, now: Instant, make: impl FnOnce() -> V) -> &mut V {
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            self.evict();
        }
        let entry = self.entries.entry(key.clone()).or_insert_with(|| (now, make()));
        entry.0 = now;
        &mut entry.1
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(_, v)| v)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(_, v)| v)
    }

    /// Forgets entries last touched before `cutoff`.
    pub fn forget_before(&mut self, cutoff: Instant) {
        self.entries.retain(|_, (touched, _)| *touched >= cutoff);
    }

    /// Every entry, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, (_, v))| (k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict(&mut self) {
        let mut times: Vec<Instant> = self.entries.values().map(|(t, _)| *t).collect();
        let drop = (self.capacity / 10).max(1).min(times.len());
        let (_, cutoff, _) = times.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        let mut removed = 0;
        self.entries.retain(|_, (t, _)| {
            if removed < drop && *t <= cutoff {
                removed += 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn never_grows_past_capacity_and_keeps_the_recent() {
        let start = Instant::now();
        let mut map = BoundedMap::new(100);
        for i in 0..10_000u32 {
            *map.touch(&i, start + Duration::from_millis(i as u64), || 0) += 1;
            assert!(map.len() <= 100);
        }
        assert!(map.get(&9_999).is_some());
        assert!(map.get(&0).is_none());
        map.forget_before(start + Duration::from_millis(9_995));
        assert_eq!(map.len(), 5);
    }
}
