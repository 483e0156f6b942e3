//! Workload shapes over time: a value (arrivals per second, or a metric's reading) as a function
//! of simulated time. Scenario files name one shape per source; `value_at` is exact and cheap, so
//! the loop can sample it every second for a day.

use serde::{Deserialize, Deserializer};

use tandem_podscaler::TimeMs;

/// A duration as scenario files write it: seconds as a number, or `90s`, `5m`, `1h30m`, `2d`,
/// `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Millis(pub i64);

impl Millis {
    /// Parses `1h30m`-style text (units ms, s, m, h, d; a bare number is seconds).
    ///
    /// # Errors
    /// A message saying what was expected.
    pub fn parse(text: &str) -> Result<Millis, String> {
        let t = text.trim();
        let bad =
            || format!("{text:?} is not a duration (write 90s, 5m, 1h30m or a number of seconds)");
        if t.is_empty() {
            return Err(bad());
        }
        if let Ok(secs) = t.parse::<f64>() {
            return (secs.is_finite() && secs >= 0.0)
                .then(|| Millis((secs * 1000.0).round() as i64))
                .ok_or_else(bad);
        }
        let mut total: i64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let factor = match &rest[..unit_len] {
                "ms" => 1.0,
                "s" => 1000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = total.saturating_add((n * factor).round() as i64);
        }
        Ok(Millis(total))
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) if n.is_finite() && n >= 0.0 => Ok(Millis((n * 1000.0).round() as i64)),
            Raw::Number(n) => Err(serde::de::Error::custom(format!("{n} is not a duration"))),
            Raw::Text(t) => Millis::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// One step of a [`Pattern::Steps`]: from `at` on, the value is `value`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When the step starts.
    pub at: Millis,
    /// The value from then on.
    pub value: f64,
}

/// Periodic bursts over a base level.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bursts {
    /// Time between burst starts.
    pub every: Millis,
    /// Length of each burst.
    pub duration: Millis,
    /// Value during a burst.
    pub value: f64,
    /// Value between bursts (default 0).
    #[serde(default)]
    pub base: f64,
    /// First burst start (default 0).
    #[serde(default)]
    pub start: Millis,
    /// Number of bursts (default: unlimited).
    #[serde(default)]
    pub count: Option<u32>,
}

/// A sine wave, clamped at 0.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sine {
    /// Mean value.
    pub mean: f64,
    /// Amplitude.
    pub amplitude: f64,
    /// Period.
    pub period: Millis,
    /// Phase shift (default 0).
    #[serde(default)]
    pub phase: Millis,
}

/// How scenario files write a [`Pattern`]: a mapping with exactly one key. (serde_yaml_ng
/// reads externally tagged enums only from YAML tags, so the key is matched by hand.)
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatternSpec {
    #[serde(default)]
    constant: Option<f64>,
    #[serde(default)]
    steps: Option<Vec<Step>>,
    #[serde(default)]
    bursts: Option<Bursts>,
    #[serde(default)]
    sine: Option<Sine>,
    #[serde(default)]
    csv: Option<String>,
}

impl TryFrom<PatternSpec> for Pattern {
    type Error = String;
    fn try_from(s: PatternSpec) -> Result<Self, String> {
        let mut found = Vec::new();
        if let Some(v) = s.constant {
            found.push(Pattern::Constant(v));
        }
        if let Some(v) = s.steps {
            found.push(Pattern::Steps(v));
        }
        if let Some(v) = s.bursts {
            found.push(Pattern::Bursts(v));
        }
        if let Some(v) = s.sine {
            found.push(Pattern::Sine(v));
        }
        if let Some(v) = s.csv {
            found.push(Pattern::Csv(v));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            _ => Err("write exactly one of constant, steps, bursts, sine or csv".to_owned()),
        }
    }
}

/// A value over time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "PatternSpec")]
pub enum Pattern {
    /// The same value all the time.
    Constant(f64),
    /// Piecewise constant; before the first step the value is 0.
    Steps(Vec<Step>),
    /// Periodic bursts.
    Bursts(Bursts),
    /// A sine wave.
    Sine(Sine),
    /// A trace, one value per second from a CSV file (path relative to the scenario); the shell
    /// reads it into [`Pattern::Trace`].
    Csv(String),
    /// Per-second values (what a CSV becomes); after the end the value is 0.
    Trace(Vec<f64>),
}

impl Pattern {
    /// The value at `t`.
    pub fn value_at(&self, t: TimeMs) -> f64 {
        let ms = t.0;
        let v = match self {
            Pattern::Constant(v) => *v,
            Pattern::Steps(steps) => steps
                .iter()
                .rev()
                .find(|s| s.at.0 <= ms)
                .map_or(0.0, |s| s.value),
            Pattern::Bursts(b) => {
                let since = ms - b.start.0;
                if since < 0 || b.every.0 <= 0 {
                    b.base
                } else {
                    let n = since / b.every.0;
                    let within = since % b.every.0 < b.duration.0;
                    let counted = b.count.is_none_or(|c| n < i64::from(c));
                    if within && counted { b.value } else { b.base }
                }
            }
            Pattern::Sine(s) => {
                if s.period.0 <= 0 {
                    s.mean
                } else {
                    let x = (ms + s.phase.0) as f64 / s.period.0 as f64;
                    s.mean + s.amplitude * (x * std::f64::consts::TAU).sin()
                }
            }
            Pattern::Csv(_) => 0.0,
            Pattern::Trace(values) => usize::try_from(ms / 1000)
                .ok()
                .and_then(|i| values.get(i))
                .copied()
                .unwrap_or(0.0),
        };
        if v.is_finite() { v.max(0.0) } else { 0.0 }
    }

    /// Parses a CSV trace: one number per line (the last column when there are several), a
    /// header line and blank lines skipped.
    ///
    /// # Errors
    /// `(line, message)` for the first line that is not a number (after the first line).
    pub fn parse_csv(text: &str) -> Result<Vec<f64>, (usize, String)> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let cell = line.rsplit(',').next().unwrap_or("").trim();
            if cell.is_empty() || cell.starts_with('#') {
                continue;
            }
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => out.push(v),
                _ if i == 0 => {}
                _ => return Err((i + 1, format!("{cell:?} is not a non-negative number"))),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go_and_seconds() {
        assert_eq!(Millis::parse("90s"), Ok(Millis(90_000)));
        assert_eq!(Millis::parse("1h30m"), Ok(Millis(5_400_000)));
        assert_eq!(Millis::parse("250ms"), Ok(Millis(250)));
        assert_eq!(Millis::parse("15"), Ok(Millis(15_000)));
        assert!(Millis::parse("5 minutes").is_err());
        assert!(Millis::parse("").is_err());
    }

    #[test]
    fn patterns_give_their_values() {
        let steps = Pattern::Steps(vec![
            Step {
                at: Millis(0),
                value: 1.0,
            },
            Step {
                at: Millis(10_000),
                value: 5.0,
            },
        ]);
        assert_eq!(steps.value_at(TimeMs(9_999)), 1.0);
        assert_eq!(steps.value_at(TimeMs(10_000)), 5.0);
        let b = Pattern::Bursts(Bursts {
            every: Millis(60_000),
            duration: Millis(10_000),
            value: 7.0,
            base: 1.0,
            start: Millis(0),
            count: Some(1),
        });
        assert_eq!(b.value_at(TimeMs(5_000)), 7.0);
        assert_eq!(b.value_at(TimeMs(15_000)), 1.0);
        assert_eq!(b.value_at(TimeMs(65_000)), 1.0);
        let s = Pattern::Sine(Sine {
            mean: 1.0,
            amplitude: 2.0,
            period: Millis(4_000),
            phase: Millis(0),
        });
        assert!((s.value_at(TimeMs(1_000)) - 3.0).abs() < 1e-9);
        assert_eq!(s.value_at(TimeMs(3_000)), 0.0);
        let t = Pattern::Trace(vec![1.0, 2.0]);
        assert_eq!(t.value_at(TimeMs(1_500)), 2.0);
        assert_eq!(t.value_at(TimeMs(2_000)), 0.0);
    }

    #[test]
    fn csv_skips_header_and_names_bad_lines() {
        assert_eq!(
            Pattern::parse_csv("second,rate\n0,1\n1,2.5\n"),
            Ok(vec![1.0, 2.5])
        );
        assert_eq!(Pattern::parse_csv("1\nx\n").unwrap_err().0, 2);
    }
}
