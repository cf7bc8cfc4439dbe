//! [`TradeKey`]: a trade id in an exact, allocation-free form for de-duplication. Bybit's trade ids
//! are UUIDs (derivatives) or decimal integers (spot); both fit a `u128` exactly, so remembering
//! the last 20,000 ids costs neither a `String` per trade nor a SipHash over text. Any other form
//! keeps its text. The mapping is injective: only the canonical spelling of each form (lowercase
//! 8-4-4-4-12 hex, digits without a leading zero) is packed, each form with its own variant, so two
//! different ids never become the same key.

/// An exact trade id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TradeKey {
    /// A canonical lowercase UUID (`8-4-4-4-12` hex digits).
    Uuid(u128),
    /// A canonical decimal integer (no sign, no leading zero), up to 38 digits.
    Decimal(u128),
    /// Anything else, as text.
    Text(Box<str>),
}

impl TradeKey {
    /// The key of `id`.
    pub fn of(id: &str) -> TradeKey {
        if let Some(v) = uuid(id) {
            return TradeKey::Uuid(v);
        }
        if let Some(v) = decimal(id) {
            return TradeKey::Decimal(v);
        }
        TradeKey::Text(id.into())
    }
}

fn uuid(id: &str) -> Option<u128> {
    let b = id.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

fn decimal(id: &str) -> Option<u128> {
    let b = id.as_bytes();
    if b.is_empty() || b.len() > 38 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    let mut v: u128 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u128::from(c - b'0');
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bybit_forms_pack_and_others_keep_their_text() {
        assert_eq!(
            TradeKey::of("20f43950-d8dd-5b31-9112-a178eb6023af"),
            TradeKey::Uuid(0x20f43950_d8dd_5b31_9112_a178eb6023af)
        );
        assert_eq!(
            TradeKey::of("2290000000061666327"),
            TradeKey::Decimal(2290000000061666327)
        );
        for other in [
            "20F43950-D8DD-5B31-9112-A178EB6023AF", // not canonical: upper case
            "20f43950d8dd5b319112a178eb6023af",     // no hyphens
            "0123",                                 // leading zero
            "",
            "t-1",
            "123456789012345678901234567890123456789", // 39 digits
        ] {
            assert_eq!(TradeKey::of(other), TradeKey::Text(other.into()), "{other}");
        }
        assert_eq!(TradeKey::of("0"), TradeKey::Decimal(0));
    }

    proptest! {
        /// Two ids get the same key exactly when they are the same id.
        #[test]
        fn keys_are_equal_only_for_equal_ids(
            a in "([0-9a-fA-F-]{0,40}|[0-9]{1,40}|[a-z0-9-]{1,12})",
            b in "([0-9a-fA-F-]{0,40}|[0-9]{1,40}|[a-z0-9-]{1,12})",
        ) {
            prop_assert_eq!(TradeKey::of(&a) == TradeKey::of(&b), a == b);
        }

        #[test]
        fn a_uuid_and_its_key_agree(v in any::<u128>()) {
            let h = format!("{v:032x}");
            let id = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
            prop_assert_eq!(TradeKey::of(&id), TradeKey::Uuid(v));
            let d = v.to_string();
            if d.len() <= 38 {
                prop_assert_eq!(TradeKey::of(&d), TradeKey::Decimal(v));
            }
        }
    }
}
