//! The caller's deadline: `grpc-timeout`, read and enforced over the whole
//! call.

use std::time::Duration;

use tokio::time::Instant;
use tonic::Status;

/// The status of a call whose deadline passed.
pub(super) fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("the call's deadline (grpc-timeout) passed")
}

/// When the call must be over, from its `grpc-timeout` header; `None` if
/// it has none, or one too far away for an [`Instant`] to hold.
pub(super) fn deadline(headers: &http::HeaderMap) -> Option<Instant> {
    // The longest legal grpc-timeout (99,999,999 hours) overflows an
    // Instant on some platforms; a deadline past what one can hold is no
    // deadline at all.
    grpc_timeout(headers).and_then(|timeout| Instant::now().checked_add(timeout))
}

/// Waits until `deadline`; forever if there is none.
pub(super) async fn passed(deadline: Option<Instant>) {
    match deadline {
        // Boxed: a timer is over 100 bytes, which a call without a
        // deadline need not carry.
        Some(deadline) => Box::pin(tokio::time::sleep_until(deadline)).await,
        None => std::future::pending().await,
    }
}

/// Parses `grpc-timeout`: at most 8 digits and a unit, as gRPC's HTTP/2
/// protocol defines it. A malformed value is ignored, as if absent.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        let parse = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            grpc_timeout(&headers)
        };
        assert_eq!(parse("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("1M"), Some(Duration::from_secs(60)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "S", "3", "3s", "-3S", "123456789S", "1.5S", "3 S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

    #[test]
    fn waiting_for_no_deadline_holds_no_timer() {
        // Every call's future holds this wait until the call's response
        // starts, with or without a deadline.
        let size = std::mem::size_of_val(&passed(None));
        assert!(
            size < std::mem::size_of::<tokio::time::Sleep>(),
            "{size} bytes"
        );
    }
}
