//! [`RawTap`]: the optional hook through which a live connection hands every raw text frame, with
//! its local receive time, to a recorder. Offering a frame never blocks: a sink that is full drops
//! the frame and counts it.

use std::fmt;
use std::sync::Arc;

/// Something that takes raw frames (the recorder, or a worker forwarding them to its supervisor).
pub trait RawSink: Send + Sync {
    /// Takes one frame received at `recv_ns` (Unix ns). Must not block.
    fn offer(&self, recv_ns: u64, text: &str);
}

/// A cloneable handle on a [`RawSink`]; part of a feed's configuration (never serialized).
#[derive(Clone)]
pub struct RawTap(Arc<dyn RawSink>);

impl RawTap {
    /// A tap feeding `sink`.
    pub fn new(sink: Arc<dyn RawSink>) -> Self {
        RawTap(sink)
    }

    /// Offers one frame (never blocks).
    pub fn offer(&self, recv_ns: u64, text: &str) {
        self.0.offer(recv_ns, text);
    }
}

impl fmt::Debug for RawTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawTap")
    }
}

impl PartialEq for RawTap {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<(u64, String)>>);
    impl RawSink for Collect {
        fn offer(&self, recv_ns: u64, text: &str) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((recv_ns, text.to_string()));
        }
    }

    #[test]
    fn a_tap_hands_frames_to_its_sink_and_compares_by_identity() {
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let tap = RawTap::new(sink.clone());
        let same = tap.clone();
        tap.offer(7, "{}");
        same.offer(8, "[]");
        let got = sink.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(got, vec![(7, "{}".to_string()), (8, "[]".to_string())]);
        assert_eq!(tap, same);
        let other = RawTap::new(Arc::new(Collect(Mutex::new(Vec::new()))));
        assert_ne!(tap, other);
    }
}
