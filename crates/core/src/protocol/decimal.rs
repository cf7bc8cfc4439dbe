//! Exact decimals from Bybit's decimal strings: the parser and the serde glue (strings to
//! [`Decimal`], `[price, size]` pairs to [`Level`]). No `f64` anywhere.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::ws::Level;

/// Deserializes a decimal from Bybit's decimal string, exactly (no rounding, no f64).
pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_str(DecimalVisitor)
}

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v).map_err(E::custom)
    }
}

/// Parses a decimal string exactly; refuses anything that is not a plain finite decimal
/// (`-?digits(.digits)?`: no exponent, no sign `+`, no bare dot).
///
/// The common case (at most 19 significant digits) is parsed by hand into a 64-bit mantissa and a
/// scale, several times faster than a general decimal parser; longer numbers take the general path.
pub fn parse_decimal(v: &str) -> Result<Decimal, String> {
    let bytes = v.as_bytes();
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let invalid = || format!("invalid decimal {v:?}");
    if digits.is_empty() || digits[0] == b'.' || digits[digits.len() - 1] == b'.' {
        return Err(invalid());
    }
    let mut mantissa: u64 = 0;
    let mut scale: u32 = 0;
    let mut seen_dot = false;
    let mut overflow = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                match mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u64::from(b - b'0')))
                {
                    Some(m) => mantissa = m,
                    None => overflow = true,
                }
                scale += u32::from(seen_dot);
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return Err(invalid()),
        }
    }
    if overflow || scale > 28 {
        return Decimal::from_str_exact(v).map_err(|e| format!("invalid decimal {v:?}: {e}"));
    }
    // A u64 mantissa always fits Decimal's 96 bits.
    Ok(Decimal::from_parts(
        mantissa as u32,
        (mantissa >> 32) as u32,
        0,
        negative,
        scale,
    ))
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LevelVisitor;
        impl<'de> Visitor<'de> for LevelVisitor {
            type Value = Level;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [price, size] pair of decimal strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Level, A::Error> {
                let price = seq
                    .next_element_seed(DecimalSeed)?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let qty = seq
                    .next_element_seed(DecimalSeed)?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if qty.is_sign_negative() && !qty.is_zero() {
                    return Err(de::Error::custom(format_args!("negative size {qty}")));
                }
                // Bybit's RPI book sends a third element; tolerate and ignore anything extra.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Level { price, qty })
            }
        }
        d.deserialize_seq(LevelVisitor)
    }
}

pub(crate) struct DecimalSeed;
impl<'de> DeserializeSeed<'de> for DecimalSeed {
    type Value = Decimal;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Decimal, D::Error> {
        decimal(d)
    }
}
