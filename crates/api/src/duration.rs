//! Durations as Karpenter writes them: Go `time.ParseDuration` strings, plus `Never`.
//!
//! Upstream stores `expireAfter`, `consolidateAfter`, `terminationGracePeriod`, budget
//! `duration` and KWOK's `nodeRegistrationDelay` as strings in the object and parses them with
//! Go's `time.ParseDuration` (core `pkg/apis/v1/duration.go`). We parse the same grammar so a
//! value Karpenter accepts is a value we accept, and we keep the string exactly as written
//! ([`AsWritten`]) so writing an object back never rewrites `1m` into `1m0s`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Pattern of `expireAfter` and `consolidateAfter` (karpenter.md §2.1): whole numbers of
/// h, m or s, or `Never`. Stricter than Go's parser, which is why parsing is separate.
pub const NILLABLE_DURATION_PATTERN: &str = r"^(([0-9]+(s|m|h))+|Never)$";

/// Pattern of `terminationGracePeriod` and KWOK `nodeRegistrationDelay`: like
/// [`NILLABLE_DURATION_PATTERN`] without `Never`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(s|m|h))+$";

/// Pattern of a disruption budget's `duration`: hours and minutes only, optional trailing `0s`.
pub const BUDGET_DURATION_PATTERN: &str = r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$";

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Go rejects `""` too; an empty field is a missing value, not zero.
    #[error("invalid duration \"\": empty string")]
    Empty,
    /// Go's message for text that is not `number unit` pairs.
    #[error("invalid duration {input:?}")]
    Invalid {
        /// The text as given.
        input: String,
    },
    /// A number without a unit, e.g. `30` (only `0` may stand alone, as in Go).
    #[error("missing unit in duration {input:?}")]
    MissingUnit {
        /// The text as given.
        input: String,
    },
    /// A unit Go does not know, e.g. `1d`.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The text as given.
        input: String,
    },
    /// More than Go's int64 nanoseconds (about 292 years).
    #[error("invalid duration {input:?}: out of range")]
    Overflow {
        /// The text as given.
        input: String,
    },
    /// Go accepts `-1s`, but none of the fields we read may be negative and
    /// [`std::time::Duration`] cannot hold it.
    #[error("invalid duration {input:?}: negative durations are not supported")]
    Negative {
        /// The text as given.
        input: String,
    },
}

/// Go's limit: durations are int64 nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a Go `time.ParseDuration` string (`300ms`, `1.5h`, `2h45m`, `1µs`) into a
/// [`Duration`], so fields read by Karpenter with that parser accept the same text here.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid {
        input: input.to_owned(),
    };
    let mut s = input;
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        // Fraction part.
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (f, rest) = rest.split_at(frac_len);
            frac_digits = f;
            s = rest;
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or '.'.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_owned(),
                    input: input.to_owned(),
                });
            }
        };
        let overflow = || DurationError::Overflow {
            input: input.to_owned(),
        };
        let mut whole: u128 = 0;
        for d in int_digits.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(d - b'0')))
                .filter(|w| *w <= MAX_NANOS)
                .ok_or_else(overflow)?;
        }
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(overflow)?;
        // Fractions are scaled like Go: digits beyond what fits are dropped.
        let mut scale: u128 = 1;
        let mut frac: u128 = 0;
        for d in frac_digits.bytes() {
            if scale > MAX_NANOS {
                break;
            }
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        nanos += frac * unit_nanos / scale;
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
    }
    if negative && total != 0 {
        return Err(DurationError::Negative {
            input: input.to_owned(),
        });
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow {
        input: input.to_owned(),
    })?;
    // The remainder is below 10^9, so it always fits.
    let sub = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// Formats a duration the way Go's `time.Duration.String` does (`720h0m0s`, `1m30s`,
/// `1.5s`, `300ms`, `0s`), the canonical form Karpenter prints in logs and events.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        // Sub-second: one unit with a decimal fraction.
        let (unit, per) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("\u{00b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", decimal(nanos, per));
    }
    let hours = nanos / 3_600_000_000_000;
    let rem = nanos % 3_600_000_000_000;
    let minutes = rem / 60_000_000_000;
    let rem = rem % 60_000_000_000;
    let seconds = decimal(rem, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / per` with the fraction written without trailing zeros.
fn decimal(value: u128, per: u128) -> String {
    let whole = value / per;
    let frac = value % per;
    if frac == 0 {
        return whole.to_string();
    }
    let width = per.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A duration that may be switched off with `Never`, as Karpenter's `expireAfter` and
/// `consolidateAfter` are.
///
/// `Never` is a value of its own rather than `None` so that "not set" (the API server applies
/// the default) and "set to never" cannot be confused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NillableDuration {
    /// The behaviour is disabled (no expiry, no consolidation).
    Never,
    /// The behaviour happens after this long.
    Duration(Duration),
}

impl NillableDuration {
    /// Parses `Never` or a Go duration string.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        if input == "Never" {
            Ok(Self::Never)
        } else {
            parse_go_duration(input).map(Self::Duration)
        }
    }

    /// The duration, or `None` for `Never`; what decision code compares against elapsed time.
    pub fn as_duration(&self) -> Option<Duration> {
        match self {
            Self::Never => None,
            Self::Duration(d) => Some(*d),
        }
    }
}

impl FromStr for NillableDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for NillableDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Never => f.write_str("Never"),
            Self::Duration(d) => f.write_str(&format_go_duration(*d)),
        }
    }
}

impl From<Duration> for NillableDuration {
    fn from(d: Duration) -> Self {
        Self::Duration(d)
    }
}

impl Serialize for NillableDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NillableDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for NillableDuration {
    fn schema_name() -> Cow<'static, str> {
        "NillableDuration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": NILLABLE_DURATION_PATTERN })
    }
}

/// A duration that cannot be `Never` (`terminationGracePeriod`, `nodeRegistrationDelay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// Parses a Go duration string.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        parse_go_duration(input).map(Self)
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": DURATION_PATTERN })
    }
}

/// A parsed value together with the exact string the user wrote.
///
/// Upstream keeps duration fields as the original text (Karpenter's `NillableDuration` carries
/// its raw bytes for hashing), so an object we read and write back must keep `1m` as `1m`,
/// not `1m0s`. Equality compares both, as a write-back would.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsWritten<T> {
    raw: String,
    value: T,
}

impl<T: FromStr> AsWritten<T> {
    /// Parses `raw`, keeping it verbatim for serialization.
    pub fn parse(raw: &str) -> Result<Self, T::Err> {
        let value = raw.parse()?;
        Ok(Self {
            raw: raw.to_owned(),
            value,
        })
    }
}

impl<T> AsWritten<T> {
    /// Pairs a value with its spelling without re-parsing; for defaults whose spelling must
    /// match the API server's (`720h`, not `720h0m0s`). The caller vouches they agree.
    pub fn from_parts(raw: impl Into<String>, value: T) -> Self {
        Self {
            raw: raw.into(),
            value,
        }
    }

    /// The parsed value decisions use.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The string as written in the object.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl<T: fmt::Display> From<T> for AsWritten<T> {
    /// Spells a value in its canonical form, for objects Tandem creates itself.
    fn from(value: T) -> Self {
        Self {
            raw: value.to_string(),
            value,
        }
    }
}

impl<T> fmt::Display for AsWritten<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl<T> Serialize for AsWritten<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de, T> Deserialize<'de> for AsWritten<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<T: JsonSchema> JsonSchema for AsWritten<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_every_go_unit() {
        assert_eq!(parse_go_duration("1ns").unwrap(), Duration::from_nanos(1));
        assert_eq!(parse_go_duration("1us").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_go_duration("1µs").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_go_duration("1μs").unwrap(), Duration::from_micros(1));
        assert_eq!(
            parse_go_duration("300ms").unwrap(),
            Duration::from_millis(300)
        );
        assert_eq!(parse_go_duration("30s").unwrap(), secs(30));
        assert_eq!(parse_go_duration("1m").unwrap(), secs(60));
        assert_eq!(parse_go_duration("720h").unwrap(), secs(720 * 3600));
    }

    #[test]
    fn parses_combined_and_decimal_forms() {
        assert_eq!(parse_go_duration("1h30m").unwrap(), secs(5400));
        assert_eq!(parse_go_duration("168h0m0s").unwrap(), secs(168 * 3600));
        assert_eq!(parse_go_duration("1.5h").unwrap(), secs(5400));
        assert_eq!(
            parse_go_duration(".5s").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("1.s").unwrap(), secs(1));
        assert_eq!(
            parse_go_duration("2h45m30.5s").unwrap(),
            Duration::from_millis(9_930_500)
        );
        assert_eq!(parse_go_duration("+5s").unwrap(), secs(5));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("-0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_go_duration("30"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("h"),
            Err(DurationError::Invalid { .. })
        ));
        assert!(matches!(
            parse_go_duration("."),
            Err(DurationError::Invalid { .. })
        ));
        assert!(matches!(
            parse_go_duration("-"),
            Err(DurationError::Invalid { .. })
        ));
        assert!(matches!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            parse_go_duration("9999999999999999999h"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_go_duration("3000000h"),
            Err(DurationError::Overflow { .. })
        ));
    }

    #[test]
    fn error_messages_are_lowercase_without_period() {
        let msg = parse_go_duration("1d").unwrap_err().to_string();
        assert_eq!(msg, "unknown unit \"d\" in duration \"1d\"");
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(secs(720 * 3600)), "720h0m0s");
        assert_eq!(format_go_duration(secs(60)), "1m0s");
        assert_eq!(format_go_duration(secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(format_go_duration(Duration::from_micros(2)), "2µs");
        assert_eq!(format_go_duration(Duration::from_nanos(5)), "5ns");
        assert_eq!(format_go_duration(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn nillable_parses_never_and_displays_canonically() {
        assert_eq!(
            NillableDuration::parse("Never").unwrap(),
            NillableDuration::Never
        );
        assert_eq!(
            NillableDuration::parse("Never").unwrap().as_duration(),
            None
        );
        let d = NillableDuration::parse("1h30m").unwrap();
        assert_eq!(d.to_string(), "1h30m0s");
        assert_eq!(NillableDuration::parse(&d.to_string()).unwrap(), d);
        assert!(NillableDuration::parse("never").is_err());
    }

    #[test]
    fn nillable_serde_is_a_string() {
        let d: NillableDuration = serde_json::from_str("\"30s\"").unwrap();
        assert_eq!(d, NillableDuration::Duration(secs(30)));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"30s\"");
        assert!(serde_json::from_str::<NillableDuration>("30").is_err());
    }

    #[test]
    fn as_written_keeps_the_spelling() {
        let d: AsWritten<NillableDuration> = serde_json::from_str("\"1m\"").unwrap();
        assert_eq!(d.value(), &NillableDuration::Duration(secs(60)));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1m\"");
        let err = serde_json::from_str::<AsWritten<NillableDuration>>("\"5mfoo\"").unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn display_then_parse_is_identity(nanos in 0u64..(i64::MAX as u64)) {
            let d = Duration::from_nanos(nanos);
            let text = format_go_duration(d);
            proptest::prop_assert_eq!(parse_go_duration(&text).unwrap(), d);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = NillableDuration::parse(&s);
        }
    }
}
