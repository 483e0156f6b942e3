//! Kubernetes resource quantities with exact arithmetic.
//!
//! A [`Quantity`] holds its value as a whole number of nano-units in an `i128`, so every form the
//! API server accepts (`100m`, `1.5Gi`, `1e3`, `-0.5`, `.5`, `1.`) is represented without floating
//! point. Parsing follows `k8s.io/apimachinery/pkg/api/resource/quantity.go`:
//!
//! - the grammar is `<sign>? <digits>? (. <digits>?)? <suffix>`, where the suffix is a decimal SI
//!   suffix (`n u m "" k M G T P E`), a binary SI suffix (`Ki Mi Gi Ti Pi Ei`) or a decimal exponent
//!   (`e3`, `E-2`); like upstream, a bare sign or a lone `.` parses as zero;
//! - precision finer than one nano-unit is rounded up (away from zero), so `0.1n` is `1n`;
//! - the magnitude is capped at 2^63−1 whole units. Upstream caps only binary-SI values and keeps
//!   bigger decimal ones in an arbitrary-precision form; we cap every format, so the value always
//!   fits our fixed-size representation (documented deviation);
//! - an exponent outside `i32` saturates instead of wrapping as upstream's `int32()` cast does.
//!
//! The quantity remembers the [`Format`] of its suffix so that [`Display`](std::fmt::Display)
//! prints the same canonical form as Kubernetes (`1.5` → `1500m`, `1.5Gi` → `1536Mi`,
//! `0.5Ki` → `512`, `12e6` → `12e6`). Equality, ordering and hashing look at the value only:
//! `1Ki == 1024`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use thiserror::Error;

/// Nano-units per whole unit, the finest precision a quantity keeps.
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Largest magnitude a quantity may hold, in nano-units: 2^63−1 whole units (upstream's cap).
const MAX_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT;

/// Decimal digits of [`MAX_NANOS`]; any longer digit string is above the cap.
const MAX_NANOS_DIGITS: usize = 28;

/// The suffix family a quantity was written with; it decides how the value is printed back.
///
/// Kubernetes keeps this beside the value so that a round trip through the API does not change
/// the unit a user chose (memory stays in `Mi`, CPU in `m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Format {
    /// Powers of 1000 (`m`, `k`, `M`…); also the format of plain numbers.
    #[default]
    DecimalSi,
    /// Powers of 1024 (`Ki`, `Mi`, `Gi`…), the usual memory form.
    BinarySi,
    /// Scientific notation (`1e3`, `5E-3`).
    DecimalExponent,
}

/// Why a string is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The input was the empty string, which the API server rejects.
    #[error("quantity is empty")]
    Empty,
    /// A character that cannot appear at that place in a quantity.
    #[error("quantity {input:?} has unexpected character {found:?} at byte {at}")]
    UnexpectedCharacter {
        /// The whole input, for context.
        input: String,
        /// The offending character.
        found: char,
        /// Its byte offset in `input`.
        at: usize,
    },
    /// The suffix is not one of the SI suffixes or a decimal exponent.
    #[error(
        "quantity {input:?} has unknown suffix {suffix:?} (expected one of n, u, m, k, M, G, T, P, E, \
         Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)"
    )]
    UnknownSuffix {
        /// The whole input, for context.
        input: String,
        /// The suffix that was not recognised.
        suffix: String,
    },
}

/// A Kubernetes resource quantity: an exact decimal value with nano-unit precision.
///
/// See the [module documentation](self) for the parsing rules. Arithmetic is checked or
/// saturating at the ±(2^63−1) unit cap, never wrapping.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Quantity {
    /// The zero quantity, printed as `0`.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSi,
    };

    /// A quantity of `milli` thousandths of a unit, the natural form of CPU requests.
    pub fn from_milli(milli: i64) -> Self {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
            format: Format::DecimalSi,
        }
    }

    /// A quantity of whole units printed in `format` (e.g. bytes in [`Format::BinarySi`]).
    pub fn from_value(value: i64, format: Format) -> Self {
        Quantity {
            nanos: i128::from(value) * NANOS_PER_UNIT,
            format,
        }
    }

    /// A quantity of nano-units, clamped to the ±(2^63−1) unit cap.
    pub fn from_nanos(nanos: i128, format: Format) -> Self {
        Quantity {
            nanos: nanos.clamp(-MAX_NANOS, MAX_NANOS),
            format,
        }
    }

    /// The exact value in nano-units; the lossless view for callers that need more than milli.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The suffix family this quantity prints with.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The same value, printed with another suffix family.
    pub fn with_format(self, format: Format) -> Self {
        Quantity { format, ..self }
    }

    /// True when the value is zero (`0`, `0Gi`, `-0` …).
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// True when the value is below zero; negative requests are invalid upstream.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The value in thousandths, rounded away from zero like Kubernetes' `MilliValue()`;
    /// saturates at the `i64` bounds. This is how CPU is compared: `0.1m` counts as `1m`.
    pub fn as_milli(&self) -> i64 {
        scale_away_from_zero(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded away from zero like Kubernetes' `Value()`; saturates at
    /// the `i64` bounds. This is how memory (bytes), pods and extended resources are compared.
    pub fn as_value(&self) -> i64 {
        scale_away_from_zero(self.nanos, NANOS_PER_UNIT)
    }

    /// The sum, or `None` when it would exceed the ±(2^63−1) unit cap.
    ///
    /// Like Kubernetes' `Add`, the result keeps `self`'s format unless `self` is zero.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        let nanos = self.nanos + other.nanos;
        (nanos.abs() <= MAX_NANOS).then(|| Quantity {
            nanos,
            format: self.result_format(other),
        })
    }

    /// The difference, or `None` when it would exceed the ±(2^63−1) unit cap.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        let nanos = self.nanos - other.nanos;
        (nanos.abs() <= MAX_NANOS).then(|| Quantity {
            nanos,
            format: self.result_format(other),
        })
    }

    /// The sum, clamped to the ±(2^63−1) unit cap.
    pub fn saturating_add(self, other: Quantity) -> Quantity {
        Quantity::from_nanos(self.nanos + other.nanos, self.result_format(other))
    }

    /// The difference, clamped to the ±(2^63−1) unit cap.
    pub fn saturating_sub(self, other: Quantity) -> Quantity {
        Quantity::from_nanos(self.nanos - other.nanos, self.result_format(other))
    }

    fn result_format(&self, other: Quantity) -> Format {
        if self.nanos == 0 {
            other.format
        } else {
            self.format
        }
    }
}

/// Divides by `unit` rounding away from zero, saturating to `i64`.
fn scale_away_from_zero(nanos: i128, unit: i128) -> i64 {
    let quotient = nanos / unit;
    let rounded = if nanos % unit == 0 {
        quotient
    } else {
        quotient + nanos.signum()
    };
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// Decimal SI suffixes by power of ten, from nano to exa.
const DECIMAL_SUFFIXES: [(&str, i64); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// Binary SI suffixes by power of two.
const BINARY_SUFFIXES: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];

/// What a suffix means: a power of ten, a power of two, and the format it implies.
struct Suffix {
    pow10: i64,
    pow2: u32,
    format: Format,
}

fn interpret_suffix(suffix: &str) -> Option<Suffix> {
    if let Some(&(_, pow10)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Some(Suffix {
            pow10,
            pow2: 0,
            format: Format::DecimalSi,
        });
    }
    if let Some(&(_, pow2)) = BINARY_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Some(Suffix {
            pow10: 0,
            pow2,
            format: Format::BinarySi,
        });
    }
    let exponent = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    if exponent.is_empty() {
        return None;
    }
    // Upstream parses the exponent as an int64 and then casts it to int32; we keep the int64
    // range check and saturate instead of wrapping.
    let pow10 = exponent.parse::<i64>().ok()?;
    Some(Suffix {
        pow10: pow10.clamp(i64::from(i32::MIN), i64::from(i32::MAX)),
        pow2: 0,
        format: Format::DecimalExponent,
    })
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(QuantityError::Empty);
        }
        let bytes = input.as_bytes();
        let mut pos = 0;
        let negative = match bytes[0] {
            b'-' => {
                pos = 1;
                true
            }
            b'+' => {
                pos = 1;
                false
            }
            _ => false,
        };
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_digits = &bytes[int_start..pos];
        let mut frac_digits: &[u8] = &[];
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_digits = &bytes[frac_start..pos];
        }
        // The suffix scanner of upstream: letters from "eEinumkKMGTP", an optional sign, digits.
        let suffix_start = pos;
        while pos < bytes.len() && b"eEinumkKMGTP".contains(&bytes[pos]) {
            pos += 1;
        }
        if pos < bytes.len() && (bytes[pos] == b'+' || bytes[pos] == b'-') {
            pos += 1;
        }
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos < bytes.len() {
            let found = input[pos..].chars().next().unwrap_or('?');
            return Err(QuantityError::UnexpectedCharacter {
                input: input.to_owned(),
                found,
                at: pos,
            });
        }
        let suffix_text = &input[suffix_start..];
        let suffix = interpret_suffix(suffix_text).ok_or_else(|| QuantityError::UnknownSuffix {
            input: input.to_owned(),
            suffix: suffix_text.to_owned(),
        })?;

        let magnitude = magnitude_nanos(int_digits, frac_digits, suffix.pow10, suffix.pow2);
        let nanos = if negative { -magnitude } else { magnitude };
        let mut format = suffix.format;
        // Upstream shows binary values below one unit in decimal form to avoid rounding.
        if format == Format::BinarySi && magnitude < NANOS_PER_UNIT {
            format = Format::DecimalSi;
        }
        Ok(Quantity { nanos, format })
    }
}

/// The magnitude of `int.frac × 10^pow10 × 2^pow2` in nano-units, rounded up and capped.
///
/// Works on a little-endian decimal digit vector so that arbitrarily long inputs are exact and
/// cost time linear in their length.
fn magnitude_nanos(int_digits: &[u8], frac_digits: &[u8], pow10: i64, pow2: u32) -> i128 {
    // Little-endian digits of the mantissa int‖frac.
    let mut digits: Vec<u8> = frac_digits
        .iter()
        .rev()
        .chain(int_digits.iter().rev())
        .map(|d| d - b'0')
        .collect();
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        return 0;
    }
    if pow2 > 0 {
        let factor: u128 = 1u128 << pow2;
        let mut carry: u128 = 0;
        for d in digits.iter_mut() {
            let x = u128::from(*d) * factor + carry;
            *d = (x % 10) as u8;
            carry = x / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    // Value = digits × 10^shift nano-units.
    let frac_len = i64::try_from(frac_digits.len()).unwrap_or(i64::MAX);
    let shift = 9i64.saturating_add(pow10).saturating_sub(frac_len);
    let len = digits.len();
    let (kept, sticky): (&[u8], bool) = if shift >= 0 {
        let total = usize::try_from(shift)
            .unwrap_or(usize::MAX)
            .saturating_add(len);
        if total > MAX_NANOS_DIGITS {
            return MAX_NANOS;
        }
        (&digits[..], false)
    } else {
        let drop = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX);
        if drop >= len {
            (&[], true)
        } else {
            let sticky = digits[..drop].iter().any(|&d| d != 0);
            (&digits[drop..], sticky)
        }
    };
    if kept.len() > MAX_NANOS_DIGITS {
        return MAX_NANOS;
    }
    let mut value: i128 = 0;
    for &d in kept.iter().rev() {
        value = value * 10 + i128::from(d);
    }
    if shift > 0 {
        // total digit count ≤ 28 was checked above, so this cannot overflow.
        for _ in 0..shift {
            value *= 10;
        }
    }
    if sticky {
        value += 1;
    }
    value.min(MAX_NANOS)
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySi
            && (self.nanos.abs() < 1024 * NANOS_PER_UNIT || self.nanos % NANOS_PER_UNIT != 0)
        {
            format = Format::DecimalSi;
        }
        if format == Format::BinarySi {
            let mut units = self.nanos / NANOS_PER_UNIT;
            let mut power = 0;
            while power < BINARY_SUFFIXES.len() && units % 1024 == 0 {
                units /= 1024;
                power += 1;
            }
            let suffix = if power == 0 {
                ""
            } else {
                BINARY_SUFFIXES[power - 1].0
            };
            return write!(f, "{units}{suffix}");
        }
        let mut mantissa = self.nanos;
        let mut exponent: i64 = -9;
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        match exponent.rem_euclid(3) {
            1 => {
                mantissa *= 10;
                exponent -= 1;
            }
            2 => {
                mantissa *= 100;
                exponent -= 2;
            }
            _ => {}
        }
        match format {
            Format::DecimalExponent => {
                if exponent == 0 {
                    write!(f, "{mantissa}")
                } else {
                    write!(f, "{mantissa}e{exponent}")
                }
            }
            _ => match DECIMAL_SUFFIXES.iter().find(|(_, p)| *p == exponent) {
                Some((suffix, _)) => write!(f, "{mantissa}{suffix}"),
                None => write!(f, "{mantissa}e{exponent}"),
            },
        }
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes quantity such as \"100m\", \"1.5Gi\" or 2")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::from_value(v, Format::DecimalSi))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity::from_nanos(
                    i128::from(v) * NANOS_PER_UNIT,
                    Format::DecimalSi,
                ))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                if !v.is_finite() {
                    return Err(E::custom("quantity must be a finite number"));
                }
                v.to_string().parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn canonical_forms_match_kubernetes() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("0Gi", "0"),
            ("1", "1"),
            ("1.5", "1500m"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("1Ki", "1Ki"),
            ("1024Mi", "1Gi"),
            ("1000Mi", "1000Mi"),
            ("1.1Ki", "1126400m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("1k", "1k"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1.5k", "1500"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1.5e3", "1500"),
            ("12e6", "12e6"),
            ("1e-3", "1e-3"),
            ("1e+3", "1e3"),
            ("0.1", "100m"),
            (".5", "500m"),
            ("1.", "1"),
            ("+5", "5"),
            ("-5", "-5"),
            ("-1.5Gi", "-1536Mi"),
            ("1n", "1n"),
            ("0.1n", "1n"),
            ("1u", "1u"),
            ("1.5M", "1500k"),
            ("1E", "1E"),
            ("7Ei", "7Ei"),
            ("8Ei", "9223372036854775807"),
            ("007", "7"),
            ("100Mi", "100Mi"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129M", "129M"),
            ("123Mi", "123Mi"),
        ];
        for (input, want) in cases {
            assert_eq!(q(input).to_string(), want, "input {input}");
        }
    }

    #[test]
    fn upstream_quirks_parse_as_zero() {
        for input in ["+", "-", ".", "+.", "000", "0.000"] {
            assert!(q(input).is_zero(), "{input}");
        }
    }

    #[test]
    fn malformed_quantities_say_what_is_wrong() {
        assert_eq!("".parse::<Quantity>(), Err(QuantityError::Empty));
        let err = "1K".parse::<Quantity>().unwrap_err();
        assert_eq!(
            err,
            QuantityError::UnknownSuffix {
                input: "1K".into(),
                suffix: "K".into()
            }
        );
        assert!(
            err.to_string()
                .starts_with("quantity \"1K\" has unknown suffix \"K\"")
        );
        for bad in ["1e", "1ee3", "1m3", "1Kii", "1e1.5"] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad}");
        }
        assert_eq!(
            "1.2.3".parse::<Quantity>(),
            Err(QuantityError::UnexpectedCharacter {
                input: "1.2.3".into(),
                found: '.',
                at: 3
            })
        );
        assert!(matches!(
            "12 Mi".parse::<Quantity>(),
            Err(QuantityError::UnexpectedCharacter { at: 2, .. })
        ));
        assert!("1 ".parse::<Quantity>().is_err());
        assert!("abc".parse::<Quantity>().is_err());
        assert!("1Gí".parse::<Quantity>().is_err());
    }

    #[test]
    fn milli_and_value_round_away_from_zero() {
        assert_eq!(q("100m").as_milli(), 100);
        assert_eq!(q("1").as_milli(), 1000);
        assert_eq!(q("0.1m").as_milli(), 1);
        assert_eq!(q("1n").as_milli(), 1);
        assert_eq!(q("-1n").as_milli(), -1);
        assert_eq!(q("1.5").as_value(), 2);
        assert_eq!(q("-1.5").as_value(), -2);
        assert_eq!(q("1Gi").as_value(), 1 << 30);
        assert_eq!(q("1.5Gi").as_value(), 1_610_612_736);
        assert_eq!(q("100Mi").as_value(), 104_857_600);
        assert_eq!(q("1e3").as_value(), 1000);
        assert_eq!(q("8Ei").as_value(), i64::MAX);
        assert_eq!(q("8Ei").as_milli(), i64::MAX);
    }

    #[test]
    fn huge_and_tiny_inputs_are_capped_and_rounded() {
        assert_eq!(q("9223372036854775807").as_value(), i64::MAX);
        assert_eq!(q("9223372036854775808").as_value(), i64::MAX);
        assert_eq!(q("1e100").as_value(), i64::MAX);
        assert_eq!(q("-1e100").as_value(), -i64::MAX);
        assert_eq!(q("1e99999999999").as_value(), i64::MAX);
        assert_eq!(q("1e-100").as_nanos(), 1);
        assert_eq!(
            q("0.0000000000000000000000000000000000000001Ei").as_nanos(),
            1
        );
        assert_eq!(
            q("123456789012.345678901234").as_nanos(),
            123_456_789_012_345_678_902
        );
        let long = format!("0.{}1", "0".repeat(10_000));
        assert_eq!(q(&long).as_nanos(), 1);
        assert!("1e99999999999999999999".parse::<Quantity>().is_err());
    }

    #[test]
    fn value_equality_ignores_format() {
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1000"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("0"));
    }

    #[test]
    fn arithmetic_is_checked_and_saturating() {
        let max = q("8Ei");
        assert_eq!(max.checked_add(q("1")), None);
        assert_eq!(max.saturating_add(q("1")), max);
        assert_eq!(q("1Gi").checked_sub(q("512Mi")), Some(q("512Mi")));
        assert_eq!(
            q("1Gi")
                .checked_sub(q("512Mi"))
                .map(|x| x.to_string())
                .as_deref(),
            Some("512Mi")
        );
        assert_eq!(Quantity::ZERO.saturating_add(q("1Gi")).to_string(), "1Gi");
        assert_eq!(q("100m").saturating_add(q("1")).to_string(), "1100m");
        assert_eq!(q("-8Ei").saturating_sub(q("1")), q("-8Ei"));
        assert_eq!(Quantity::from_milli(1500).to_string(), "1500m");
        assert_eq!(
            Quantity::from_value(1 << 30, Format::BinarySi).to_string(),
            "1Gi"
        );
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let v: Quantity = serde_json_like("\"1.5Gi\"");
        assert_eq!(v.to_string(), "1536Mi");
    }

    /// A tiny JSON-string deserializer so the test needs no extra dependency.
    fn serde_json_like(s: &str) -> Quantity {
        use serde::Deserialize;
        use serde::de::value::{Error, StrDeserializer};
        let inner = s.trim_matches('"');
        Quantity::deserialize(StrDeserializer::<Error>::new(inner)).unwrap()
    }

    fn format_strategy() -> impl Strategy<Value = Format> {
        prop_oneof![
            Just(Format::DecimalSi),
            Just(Format::BinarySi),
            Just(Format::DecimalExponent)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            let _ = s.parse::<Quantity>();
        }

        #[test]
        fn parse_never_panics_on_quantity_like_text(s in "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?([numkMGTPE]|[KMGTPE]i|[eE][-+]?[0-9]{1,12})?") {
            let _ = s.parse::<Quantity>();
        }

        #[test]
        fn display_round_trips(nanos in -MAX_NANOS..=MAX_NANOS, format in format_strategy()) {
            let value = Quantity::from_nanos(nanos, format);
            let text = value.to_string();
            let back: Quantity = text.parse().unwrap();
            prop_assert_eq!(back, value);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn small_values_round_trip(units in -1_000_000i64..1_000_000, milli in 0i64..1000, format in format_strategy()) {
            let value = Quantity::from_nanos(i128::from(units) * NANOS_PER_UNIT + i128::from(milli) * 1_000_000, format);
            let back: Quantity = value.to_string().parse().unwrap();
            prop_assert_eq!(back, value);
        }

        #[test]
        fn add_then_sub_is_identity(a in -1i128 << 80..1i128 << 80, b in -1i128 << 80..1i128 << 80) {
            let (a, b) = (Quantity::from_nanos(a, Format::DecimalSi), Quantity::from_nanos(b, Format::DecimalSi));
            let sum = a.checked_add(b).unwrap();
            prop_assert_eq!(sum.checked_sub(b).unwrap(), a);
        }

        #[test]
        fn milli_never_undercounts(nanos in -MAX_NANOS / 1000..MAX_NANOS / 1000) {
            let value = Quantity::from_nanos(nanos, Format::DecimalSi);
            let milli = i128::from(value.as_milli()) * 1_000_000;
            prop_assert!(milli.abs() >= nanos.abs());
            prop_assert!((milli - nanos).abs() < 1_000_000);
        }
    }
}
