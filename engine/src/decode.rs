//! Serde helpers for decoding snapshots that may be damaged: a length prefix is
//! never trusted for preallocation, so a corrupt count fails on the missing
//! bytes instead of asking the allocator for an absurd amount of memory.

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use smallvec::{Array, SmallVec};
use std::fmt;
use std::marker::PhantomData;

/// Deserializes a `SmallVec` element by element, growing only as elements arrive
/// (`smallvec`'s own impl reserves whatever length the input claims).
pub(crate) fn small_vec<'de, D, A>(deserializer: D) -> Result<SmallVec<A>, D::Error>
where
    D: Deserializer<'de>,
    A: Array,
    A::Item: Deserialize<'de>,
{
    struct ElementByElement<A>(PhantomData<A>);

    impl<'de, A> Visitor<'de> for ElementByElement<A>
    where
        A: Array,
        A::Item: Deserialize<'de>,
    {
        type Value = SmallVec<A>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
            let mut out = SmallVec::new();
            while let Some(item) = seq.next_element()? {
                out.push(item);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_seq(ElementByElement(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bincode::Options;

    #[derive(serde::Deserialize, Debug)]
    struct Holder {
        #[serde(deserialize_with = "small_vec")]
        items: SmallVec<[u32; 4]>,
    }

    fn options() -> impl Options {
        bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian().with_limit(1 << 20)
    }

    #[test]
    fn a_huge_length_prefix_fails_on_missing_bytes_instead_of_allocating() {
        let mut bytes = (1u64 << 56).to_le_bytes().to_vec();
        bytes.extend_from_slice(&7u32.to_le_bytes());
        assert!(options().deserialize::<Holder>(&bytes).is_err());
    }

    #[test]
    fn well_formed_sequences_decode() {
        let mut bytes = 5u64.to_le_bytes().to_vec();
        for i in 0..5u32 {
            bytes.extend_from_slice(&i.to_le_bytes());
        }
        let h: Holder = options().deserialize(&bytes).unwrap();
        assert_eq!(h.items.as_slice(), &[0, 1, 2, 3, 4]);
    }
}
