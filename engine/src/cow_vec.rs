//! `CowVec`: a vector kept in shared chunks, so a clone costs one reference
//! count per chunk and a write after a clone copies only the chunk it touches.
//!
//! The engine's records (workers, employers, postings, complaints) live in
//! these, so a snapshot can take a frozen copy of them without copying a
//! million records while applying waits: the copy happens afterwards, a chunk
//! at a time, as writes reach chunks the frozen copy still shares.

use serde::ser::{Serialize, SerializeSeq, Serializer};
use std::ops::{Index, IndexMut};
use std::sync::Arc;

/// Elements per sealed chunk, as a power of two: small enough that copying a
/// chunk on its first write after a clone takes microseconds, large enough
/// that a clone of a million elements touches only a few thousand counts.
const CHUNK_SHIFT: u32 = 8;
const CHUNK: usize = 1 << CHUNK_SHIFT;
const MASK: usize = CHUNK - 1;

/// Owns: every chunk in `sealed` holds exactly [`CHUNK`] elements; `open`
/// holds fewer than [`CHUNK`]; element `i` is in `sealed` if `i <
/// sealed.len() * CHUNK`, else in `open`.
#[derive(Debug)]
pub struct CowVec<T> {
    sealed: Vec<Arc<[T]>>,
    open: Vec<T>,
}

impl<T> Default for CowVec<T> {
    fn default() -> Self {
        Self { sealed: Vec::new(), open: Vec::new() }
    }
}

impl<T: Clone> Clone for CowVec<T> {
    /// Shares every sealed chunk; copies only the open one (fewer than 256 elements).
    fn clone(&self) -> Self {
        Self { sealed: self.sealed.clone(), open: self.open.clone() }
    }
}

impl<T> CowVec<T> {
    /// Elements per sealed chunk.
    pub const CHUNK_LEN: usize = CHUNK;

    /// An empty vector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        (self.sealed.len() << CHUNK_SHIFT) + self.open.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty()
    }

    /// Appends an element.
    pub fn push(&mut self, value: T) {
        if self.open.capacity() == 0 {
            self.open.reserve_exact(CHUNK);
        }
        self.open.push(value);
        if self.open.len() == CHUNK {
            let full = std::mem::replace(&mut self.open, Vec::with_capacity(CHUNK));
            self.sealed.push(Arc::from(full));
        }
    }

    /// The element at `i`, if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        match self.sealed.get(i >> CHUNK_SHIFT) {
            Some(chunk) => chunk.get(i & MASK),
            None => self.open.get(i - (self.sealed.len() << CHUNK_SHIFT)),
        }
    }

    /// The last element, if any.
    pub fn last(&self) -> Option<&T> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Elements in order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { sealed: self.sealed.iter(), current: [].iter(), open: &self.open, remaining: self.len() }
    }

    /// Removes the first sealed chunk, its [`CowVec::CHUNK_LEN`] elements, if
    /// there is one (for tables that forget their oldest entries): the
    /// indices of the rest move down by [`CowVec::CHUNK_LEN`].
    pub fn remove_first_chunk(&mut self) -> bool {
        if self.sealed.is_empty() {
            return false;
        }
        self.sealed.remove(0);
        true
    }

    /// How many sealed chunks this vector shares with another (clones share
    /// them until one side writes).
    #[cfg(test)]
    fn chunks_shared_with(&self, other: &Self) -> usize {
        self.sealed.iter().zip(&other.sealed).filter(|(a, b)| Arc::ptr_eq(a, b)).count()
    }
}

impl<T: Clone> CowVec<T> {
    /// The element at `i`, mutably, if there is one. Its chunk is copied
    /// first if a clone still shares it.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let sealed_len = self.sealed.len() << CHUNK_SHIFT;
        match self.sealed.get_mut(i >> CHUNK_SHIFT) {
            Some(chunk) => Arc::make_mut(chunk).get_mut(i & MASK),
            None => self.open.get_mut(i - sealed_len),
        }
    }
}

impl<T> From<Vec<T>> for CowVec<T> {
    fn from(values: Vec<T>) -> Self {
        let mut out = Self::new();
        out.sealed.reserve(values.len() >> CHUNK_SHIFT);
        let mut values = values.into_iter();
        loop {
            let chunk: Vec<T> = values.by_ref().take(CHUNK).collect();
            if chunk.len() < CHUNK {
                out.open = chunk;
                return out;
            }
            out.sealed.push(Arc::from(chunk));
        }
    }
}

impl<T> FromIterator<T> for CowVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut out = Self::new();
        for value in iter {
            out.push(value);
        }
        out
    }
}

impl<T> Index<usize> for CowVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        let len = self.len();
        self.get(i).unwrap_or_else(|| panic!("index {i} out of bounds of a CowVec of {len}"))
    }
}

impl<T: Clone> IndexMut<usize> for CowVec<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        let len = self.len();
        self.get_mut(i).unwrap_or_else(|| panic!("index {i} out of bounds of a CowVec of {len}"))
    }
}

impl<T: PartialEq> PartialEq for CowVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// Serialises as a sequence, exactly as a slice of the same elements does.
impl<T: Serialize> Serialize for CowVec<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for value in self {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

/// Iterator over a [`CowVec`]'s elements in order.
pub struct Iter<'a, T> {
    sealed: std::slice::Iter<'a, Arc<[T]>>,
    current: std::slice::Iter<'a, T>,
    open: &'a [T],
    remaining: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(value) = self.current.next() {
                self.remaining -= 1;
                return Some(value);
            }
            match self.sealed.next() {
                Some(chunk) => self.current = chunk.iter(),
                None => {
                    self.current = std::mem::take(&mut self.open).iter();
                    if self.current.len() == 0 {
                        return None;
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<'a, T> IntoIterator for &'a CowVec<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: usize) -> CowVec<u64> {
        (0..n as u64).collect()
    }

    #[test]
    fn holds_its_elements_in_order_across_chunk_boundaries() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let v = filled(n);
            assert_eq!(v.len(), n);
            assert_eq!(v.is_empty(), n == 0);
            assert_eq!(v.iter().len(), n);
            assert!(v.iter().copied().eq(0..n as u64), "iteration of {n}");
            assert!((0..n).all(|i| v[i] == i as u64 && v.get(i) == Some(&(i as u64))), "indexing of {n}");
            assert_eq!(v.get(n), None);
            assert_eq!(v.last().copied(), (n as u64).checked_sub(1));
            assert_eq!(CowVec::from((0..n as u64).collect::<Vec<_>>()), v, "from a Vec of {n}");
        }
    }

    #[test]
    fn a_clone_shares_chunks_until_a_write_copies_the_one_it_touches() {
        let mut v = filled(4 * CHUNK + 3);
        let frozen = v.clone();
        assert_eq!(v.chunks_shared_with(&frozen), 4);
        v[CHUNK + 5] = 1_000_000;
        *v.get_mut(4 * CHUNK + 1).unwrap() = 2_000_000;
        v.push(3_000_000);
        assert_eq!(v.chunks_shared_with(&frozen), 3, "only the written sealed chunk was copied");
        assert_eq!(frozen[CHUNK + 5], (CHUNK + 5) as u64, "the clone keeps the old value");
        assert_eq!(frozen[4 * CHUNK + 1], (4 * CHUNK + 1) as u64);
        assert_eq!(frozen.len(), 4 * CHUNK + 3);
        assert_eq!((v[CHUNK + 5], v[4 * CHUNK + 1], v.len()), (1_000_000, 2_000_000, 4 * CHUNK + 4));
        v[CHUNK + 6] = 7;
        assert_eq!(v.chunks_shared_with(&frozen), 3, "a copied chunk is written in place");
    }

    #[test]
    fn removing_the_first_chunk_shifts_the_rest_down() {
        let mut v = filled(2 * CHUNK + 3);
        assert!(v.remove_first_chunk());
        assert!(v.iter().copied().eq(CHUNK as u64..2 * CHUNK as u64 + 3));
        assert!(v.remove_first_chunk());
        assert!(!v.remove_first_chunk(), "the open chunk stays");
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn serialises_as_the_slice_it_holds() {
        let v = filled(2 * CHUNK + 9);
        let as_vec: Vec<u64> = v.iter().copied().collect();
        let ours = rmp_serde::to_vec(&v).unwrap();
        assert_eq!(ours, rmp_serde::to_vec(&as_vec[..]).unwrap());
    }
}
