//! Durations written as decimal seconds on the command line, as the
//! tutorial writes them: `0.05`, `3`, and `0` for no wait at all.

use std::time::Duration;

/// The longest duration a flag accepts: one day. Anything longer is almost
/// certainly a typo, and `Duration` arithmetic near its limits panics.
pub const MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a number of seconds such as `0.05` into a [`Duration`].
///
/// Suitable as a clap `value_parser`. Negative, non-finite and over-long
/// values are rejected with a message that says what is allowed.
pub fn parse(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds (try 0.05)"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "`{text}` must be zero or a positive number of seconds"
        ));
    }
    if secs > MAX.as_secs_f64() {
        return Err(format!(
            "`{text}` is longer than one day ({} s)",
            MAX.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_seconds() {
        assert_eq!(parse("0.05"), Ok(Duration::from_millis(50)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 1.5 "), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "abc", "-1", "NaN", "inf", "1e10", "0.05s"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
