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

    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    struct Holder {
        #[serde(deserialize_with = "small_vec")]
        items: SmallVec<[u32; 4]>,
    }

    #[test]
    fn a_huge_length_prefix_fails_on_missing_bytes_instead_of_allocating() {
        // MessagePack (the snapshot body format): a one-entry map "items" =>
        // an array claiming 2^32-1 elements, followed by a single element.
        let mut bytes = vec![0x81, 0xa5];
        bytes.extend_from_slice(b"items");
        bytes.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x07]);
        assert!(rmp_serde::from_slice::<Holder>(&bytes).is_err());
    }

    #[test]
    fn well_formed_sequences_decode() {
        let h = Holder { items: (0..5).collect() };
        let bytes = rmp_serde::to_vec_named(&h).unwrap();
        let back: Holder = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.items.as_slice(), &[0, 1, 2, 3, 4]);
    }
}
