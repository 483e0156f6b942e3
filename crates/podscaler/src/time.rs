//! The one notion of time the pod layer uses: milliseconds since the Unix epoch, passed in.

use std::fmt;

/// An instant in milliseconds since the Unix epoch.
///
/// Decisions take `now` as this value instead of reading a clock, so the simulator's virtual
/// clock (milliseconds) and the shell's wall clock drive the same code. Arithmetic saturates:
/// a far-future or far-past instant must never panic a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimeMs(pub i64);

impl TimeMs {
    /// The instant `secs` seconds later, so windows and cooldowns read in the API's unit.
    #[must_use]
    pub fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// The instant `secs` seconds earlier, used for window cut-offs.
    #[must_use]
    pub fn minus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_sub(secs.saturating_mul(1000)))
    }

    /// Milliseconds since the epoch, for the shell to convert into its timestamp type.
    #[must_use]
    pub fn as_millis(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TimeMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        assert_eq!(TimeMs(i64::MAX).plus_secs(1), TimeMs(i64::MAX));
        assert_eq!(TimeMs(i64::MIN).minus_secs(1), TimeMs(i64::MIN));
        assert_eq!(TimeMs(1_000).plus_secs(2), TimeMs(3_000));
    }
}
