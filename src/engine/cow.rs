//! A map whose values are shared with snapshots until they change (copy on write).
//!
//! The engine hands a copy of its whole state to the checkpoint and appraisal thread once a
//! minute. With plain values that copy cloned every agent on the engine task (100 ms at
//! 100,000 agents, during which no deadline fires). Here a snapshot takes one reference per
//! value, and the first change of a value after a snapshot copies that one value.
//!
//! Owns: [`CowMap`] only. Must not: know what it holds.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

use foldhash::HashMap;

/// `K → V` with each value behind an [`Arc`]; see the module doc.
#[derive(Debug)]
pub struct CowMap<K, V> {
    map: HashMap<K, Arc<V>>,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            map: HashMap::default(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> CowMap<K, V> {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(k)
    }

    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(k).map(|v| &**v)
    }

    /// The value to change; copied first if a snapshot still shares it.
    pub fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(k).map(Arc::make_mut)
    }

    /// The value of `k` to change, inserted from `f` if absent.
    pub fn get_or_insert_with(&mut self, k: &K, f: impl FnOnce() -> V) -> &mut V {
        Arc::make_mut(self.map.entry(k.clone()).or_insert_with(|| Arc::new(f())))
    }

    /// Sets the value of `k` (a snapshot keeps the old one).
    pub fn insert(&mut self, k: K, v: V) {
        self.map.insert(k, Arc::new(v));
    }

    pub fn remove<Q>(&mut self, k: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(k)
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + Clone {
        self.map.values().map(|v| &**v)
    }

    /// Every value, shared (unordered).
    pub fn shared_values(&self) -> Vec<Arc<V>> {
        self.map.values().cloned().collect()
    }

    /// Every entry, sharing the values (unordered).
    pub fn snapshot(&self) -> Vec<(K, Arc<V>)> {
        self.map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl<K: Eq + Hash, V> FromIterator<(K, Arc<V>)> for CowMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, Arc<V>)>>(it: I) -> Self {
        CowMap {
            map: it.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_the_values_it_saw_and_changes_copy_only_what_changes() {
        let mut m: CowMap<String, Vec<u32>> = CowMap::default();
        m.get_or_insert_with(&"a".to_string(), || vec![1]);
        m.get_or_insert_with(&"b".to_string(), || vec![2]);
        let snap = m.snapshot();
        if let Some(a) = m.get_mut("a") {
            a.push(10);
        }
        m.get_or_insert_with(&"c".to_string(), || vec![3]);
        m.remove("b");
        let mut seen: Vec<(String, Vec<u32>)> = snap
            .iter()
            .map(|(k, v)| (k.clone(), (**v).clone()))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![("a".into(), vec![1]), ("b".into(), vec![2])],
            "the snapshot is unchanged"
        );
        assert_eq!(m.get("a"), Some(&vec![1, 10]));
        assert_eq!(m.get("b"), None);
        assert_eq!(m.len(), 2);
        // "a" was copied when changed; nothing else was: the snapshot's "b" is the only
        // owner of its value now.
        let b = snap.iter().find(|(k, _)| k == "b").map(|(_, v)| v.clone());
        assert_eq!(b.map(|v| Arc::strong_count(&v)), Some(2));
    }
}
