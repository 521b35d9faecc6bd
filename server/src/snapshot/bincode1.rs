//! A frozen reader of the body encoding of snapshot format versions 1 to 3:
//! bincode 1's fixed-width little-endian layout (no field names; integers at
//! their width, lengths and sequence counts as u64, enum variants as u32,
//! options as a 0/1 byte). Only what those formats used is read; it is never
//! written again. A length prefix is checked against the bytes left before
//! anything is borrowed, and sequences grow element by element (serde caps
//! the preallocation it derives from a length), so a damaged count fails on
//! the missing bytes instead of allocating.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

/// Why legacy bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub enum Bincode1Error {
    /// The input ended inside a value.
    #[error("unexpected end of input at byte {0}")]
    Eof(usize),
    /// A value is not valid for its type.
    #[error("at byte {at}: {what}")]
    Invalid {
        /// Byte offset.
        at: usize,
        /// What is wrong.
        what: String,
    },
    /// A type asked for something the format cannot tell (self-description).
    #[error("{0}")]
    Custom(String),
}

impl de::Error for Bincode1Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Bincode1Error::Custom(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, Bincode1Error>;

/// Decodes one value from `bytes`, refusing trailing bytes.
pub fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T> {
    let mut d = Bincode1 { input: bytes, pos: 0 };
    let value = T::deserialize(&mut d)?;
    if d.pos != bytes.len() {
        return Err(d.invalid(format!("{} trailing bytes", bytes.len() - d.pos)));
    }
    Ok(value)
}

struct Bincode1<'de> {
    input: &'de [u8],
    pos: usize,
}

impl<'de> Bincode1<'de> {
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len()).ok_or(Bincode1Error::Eof(self.pos))?;
        let out = &self.input[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn invalid(&self, what: impl Into<String>) -> Bincode1Error {
        Bincode1Error::Invalid { at: self.pos, what: what.into() }
    }

    fn len(&mut self) -> Result<usize> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| self.invalid(format!("length {n} too large")))
    }

    /// A length-prefixed byte string, checked against the bytes left.
    fn bytes(&mut self) -> Result<&'de [u8]> {
        let n = self.len()?;
        if n > self.input.len() - self.pos {
            return Err(self.invalid(format!("length {n} exceeds the {} bytes left", self.input.len() - self.pos)));
        }
        self.take(n)
    }

    fn str(&mut self) -> Result<&'de str> {
        let at = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|e| Bincode1Error::Invalid { at, what: format!("invalid UTF-8: {e}") })
    }
}

macro_rules! fixed {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            visitor.$visit(<$ty>::from_le_bytes(self.array()?))
        }
    };
}

impl<'de> de::Deserializer<'de> for &mut Bincode1<'de> {
    type Error = Bincode1Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(self.invalid("the format does not describe its values"))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.array::<1>()?[0] {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(self.invalid(format!("invalid bool {b}"))),
        }
    }

    fixed!(deserialize_i8, visit_i8, i8);
    fixed!(deserialize_i16, visit_i16, i16);
    fixed!(deserialize_i32, visit_i32, i32);
    fixed!(deserialize_i64, visit_i64, i64);
    fixed!(deserialize_i128, visit_i128, i128);
    fixed!(deserialize_u8, visit_u8, u8);
    fixed!(deserialize_u16, visit_u16, u16);
    fixed!(deserialize_u32, visit_u32, u32);
    fixed!(deserialize_u64, visit_u64, u64);
    fixed!(deserialize_u128, visit_u128, u128);
    fixed!(deserialize_f32, visit_f32, f32);
    fixed!(deserialize_f64, visit_f64, f64);

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let first = self.array::<1>()?[0];
        let width = match first {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return Err(self.invalid("invalid char")),
        };
        let mut buf = [first, 0, 0, 0];
        buf[1..width].copy_from_slice(self.take(width - 1)?);
        let s = std::str::from_utf8(&buf[..width]).map_err(|_| self.invalid("invalid char"))?;
        visitor.visit_char(s.chars().next().ok_or_else(|| self.invalid("invalid char"))?)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.array::<1>()?[0] {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            t => Err(self.invalid(format!("invalid option tag {t}"))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.len()?;
        visitor.visit_seq(Counted { de: self, left: len })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Counted { de: self, left: len })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_seq(Counted { de: self, left: len })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.len()?;
        visitor.visit_map(Counted { de: self, left: len })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_seq(Counted { de: self, left: fields.len() })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u32(u32::from_le_bytes(self.array()?))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(self.invalid("the format cannot skip values"))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A sequence, tuple, struct or map of a known number of elements.
struct Counted<'a, 'de> {
    de: &'a mut Bincode1<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Counted<'_, 'de> {
    type Error = Bincode1Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Counted<'_, 'de> {
    type Error = Bincode1Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Bincode1<'de> {
    type Error = Bincode1Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let index = u32::from_le_bytes(self.array()?);
        let value = seed.deserialize(IntoDeserializer::<Bincode1Error>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Bincode1<'de> {
    type Error = Bincode1Error;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Counted { de: self, left: len })
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Counted { de: self, left: fields.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use smallvec::SmallVec;

    #[derive(Deserialize, Debug, PartialEq)]
    enum Shape {
        Unit,
        Tuple(u16, i8),
        Named { name: String },
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Record {
        flag: bool,
        id: u64,
        x: f64,
        note: Option<String>,
        shapes: Vec<Shape>,
        pair: (u8, i32),
    }

    fn encoded() -> Vec<u8> {
        let mut b = vec![1u8];
        b.extend_from_slice(&42u64.to_le_bytes());
        b.extend_from_slice(&1.5f64.to_le_bytes());
        b.push(1);
        b.extend_from_slice(&6u64.to_le_bytes());
        b.extend_from_slice("临汾".as_bytes());
        b.extend_from_slice(&3u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&7u16.to_le_bytes());
        b.push(0xff);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(b'a');
        b.push(9);
        b.extend_from_slice(&(-5i32).to_le_bytes());
        b
    }

    #[test]
    fn reads_the_fixed_width_layout() {
        let r: Record = from_slice(&encoded()).unwrap();
        assert_eq!(
            r,
            Record {
                flag: true,
                id: 42,
                x: 1.5,
                note: Some("临汾".into()),
                shapes: vec![Shape::Unit, Shape::Tuple(7, -1), Shape::Named { name: "a".into() }],
                pair: (9, -5),
            }
        );
    }

    #[test]
    fn every_truncation_and_trailing_bytes_are_errors() {
        let bytes = encoded();
        for cut in 0..bytes.len() {
            assert!(from_slice::<Record>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(from_slice::<Record>(&longer).is_err());
    }

    #[test]
    fn a_huge_length_prefix_fails_on_missing_bytes_instead_of_allocating() {
        #[derive(Deserialize, Debug)]
        struct Holder {
            _v: Vec<u64>,
            #[serde(deserialize_with = "small_vec_of_u32")]
            _s: SmallVec<[u32; 4]>,
        }
        fn small_vec_of_u32<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<SmallVec<[u32; 4]>, D::Error> {
            let v: Vec<u32> = Vec::deserialize(d)?;
            Ok(v.into())
        }
        let mut bytes = (1u64 << 56).to_le_bytes().to_vec();
        bytes.extend_from_slice(&7u64.to_le_bytes());
        assert!(from_slice::<Holder>(&bytes).is_err());
        let mut s = (u64::MAX).to_le_bytes().to_vec();
        s.extend_from_slice(b"abc");
        assert!(from_slice::<String>(&s).is_err());
        assert!(from_slice::<bool>(&[2]).is_err());
        assert!(from_slice::<Option<u8>>(&[3, 0]).is_err());
        assert!(from_slice::<Shape>(&9u32.to_le_bytes()).is_err());
    }
}
