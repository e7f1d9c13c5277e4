//! Lines that a client's abuse could repeat without end, held to a rate.
//!
//! A flood of bad connections must not turn into a flood of log lines:
//! [`RateLimited`] writes at most [`LINES_PER_WINDOW`] lines per
//! [`WINDOW`], counts the rest, and says how many it held back with the
//! next line after the window.

use std::{
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

use tracing::{info, warn};

/// The window over which lines are counted.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// Lines written per window; the rest are counted.
pub(crate) const LINES_PER_WINDOW: u32 = 10;

/// A rate limit on a kind of log line; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct RateLimited {
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    written: u32,
    held_back: u64,
}

impl Default for RateLimited {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimited {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(Window {
                started: Instant::now(),
                written: 0,
                held_back: 0,
            }),
        }
    }

    /// Whether a line may be written now, and how many were held back
    /// since the last one that was.
    fn admit(&self) -> Option<u64> {
        let mut window = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if window.started.elapsed() >= WINDOW {
            window.started = Instant::now();
            window.written = 0;
        }
        if window.written >= LINES_PER_WINDOW {
            window.held_back += 1;
            return None;
        }
        window.written += 1;
        Some(std::mem::take(&mut window.held_back))
    }

    /// Logs `line` at INFO, unless too many lines of its kind were.
    pub(crate) fn info(&self, line: fmt::Arguments<'_>) {
        match self.admit() {
            Some(0) => info!("{line}"),
            Some(held_back) => info!("{line} ({held_back} more like it held back before this)"),
            None => {}
        }
    }

    /// Logs `line` at WARN, unless too many lines of its kind were.
    pub(crate) fn warn(&self, line: fmt::Arguments<'_>) {
        match self.admit() {
            Some(0) => warn!("{line}"),
            Some(held_back) => warn!("{line} ({held_back} more like it held back before this)"),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_its_rate_a_kind_of_line_is_counted_and_reported_later() {
        let limit = RateLimited::new();
        for _ in 0..LINES_PER_WINDOW {
            assert_eq!(limit.admit(), Some(0));
        }
        for _ in 0..25 {
            assert_eq!(limit.admit(), None);
        }
        // The next window: the first line says how many were held back.
        limit.state.lock().unwrap().started -= WINDOW;
        assert_eq!(limit.admit(), Some(25));
        assert_eq!(limit.admit(), Some(0));
    }
}
