//! Errors of the pure protocol codec: malformed frames (carrying their payload) and REST failures.

use std::fmt;

/// How much of an offending payload an error keeps (enough to see what broke, bounded for logs).
pub const MAX_PAYLOAD_IN_ERROR: usize = 512;

/// A frame that could not be decoded. Carries the offending payload, truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub message: String,
    /// The payload (at most [`MAX_PAYLOAD_IN_ERROR`] bytes, cut on a character boundary).
    pub payload: String,
    /// Whether `payload` was cut.
    pub truncated: bool,
}

impl DecodeError {
    /// Builds an error keeping a bounded copy of `payload`.
    pub fn new(message: impl Into<String>, payload: &str) -> Self {
        let (payload, truncated) = truncate(payload, MAX_PAYLOAD_IN_ERROR);
        DecodeError {
            message: message.into(),
            payload: payload.to_string(),
            truncated,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed frame: {}; payload: {}{}",
            self.message,
            self.payload,
            if self.truncated { "…" } else { "" }
        )
    }
}

impl std::error::Error for DecodeError {}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// A REST call that did not yield its result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// Bybit answered with `retCode != 0` (e.g. 10001 for an invalid symbol).
    #[error("Bybit error {code}: {message}")]
    Api {
        /// `retCode`
        code: i64,
        /// `retMsg`
        message: String,
    },
    /// The body was not the documented envelope or result.
    #[error("{0}")]
    Malformed(DecodeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundary_and_says_so() {
        let long = "é".repeat(400); // 800 bytes
        let e = DecodeError::new("bad", &long);
        assert!(e.truncated);
        assert!(e.payload.len() <= MAX_PAYLOAD_IN_ERROR);
        assert!(e.to_string().ends_with('…'));
        let short = DecodeError::new("bad", "{");
        assert!(!short.truncated);
        assert_eq!(short.payload, "{");
    }
}
