//! Raw-frame forwarding in a worker: when its supervisor records (`WorkerConfig::record_raw`), the
//! worker's feed offers every raw frame to a bounded queue (never waiting: a full queue drops and
//! counts, like the recorder's own), and the worker loop sends each as a `WorkerMsg::Raw` frame
//! over the existing stdout framing. When not recording nothing is queued or sent.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::framing::WorkerMsg;
use crate::raw_tap::{RawSink, RawTap};

/// Raw frames queued in a worker before it drops them.
pub const QUEUE: usize = 65_536;

struct Forward {
    tx: mpsc::Sender<(u64, String)>,
    dropped: AtomicU64,
}

impl RawSink for Forward {
    fn offer(&self, recv_ns: u64, text: &str) {
        if self.tx.try_send((recv_ns, text.to_string())).is_err() {
            let n = self.dropped.fetch_add(1, Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    event = "record_frames_dropped",
                    dropped_total = n,
                    queue_capacity = QUEUE
                );
            }
        }
    }
}

/// The worker's end of raw forwarding.
pub struct RawForward {
    sink: Option<Arc<Forward>>,
    rx: Option<mpsc::Receiver<(u64, String)>>,
}

impl RawForward {
    /// Forwarding on (`enabled`) or off.
    pub fn new(enabled: bool) -> Self {
        if !enabled {
            return RawForward {
                sink: None,
                rx: None,
            };
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        RawForward {
            sink: Some(Arc::new(Forward {
                tx,
                dropped: AtomicU64::new(0),
            })),
            rx: Some(rx),
        }
    }

    /// The tap to put in the feed's configuration (`None` when off).
    pub fn tap(&self) -> Option<RawTap> {
        self.sink
            .as_ref()
            .map(|s| RawTap::new(s.clone() as Arc<dyn RawSink>))
    }

    /// A frame already queued, without waiting (to batch a burst into one write).
    pub fn try_next(&mut self) -> Option<WorkerMsg> {
        let (recv_ns, text) = self.rx.as_mut()?.try_recv().ok()?;
        Some(WorkerMsg::Raw { recv_ns, text })
    }

    /// The next frame to send; pending forever when off (cancel-safe).
    pub async fn next(&mut self) -> WorkerMsg {
        if let Some(rx) = self.rx.as_mut() {
            if let Some((recv_ns, text)) = rx.recv().await {
                return WorkerMsg::Raw { recv_ns, text };
            }
            self.rx = None;
        }
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_offered_to_the_tap_come_out_as_raw_messages() {
        let mut f = RawForward::new(true);
        let tap = f.tap().expect("on");
        tap.offer(42, "{\"topic\":\"x\"}");
        assert_eq!(
            f.next().await,
            WorkerMsg::Raw {
                recv_ns: 42,
                text: "{\"topic\":\"x\"}".into()
            }
        );
        tap.offer(43, "{}");
        assert!(matches!(
            f.try_next(),
            Some(WorkerMsg::Raw { recv_ns: 43, .. })
        ));
        assert!(f.try_next().is_none());
        let mut off = RawForward::new(false);
        assert!(off.tap().is_none());
        let waited = tokio::time::timeout(std::time::Duration::ZERO, off.next()).await;
        assert!(waited.is_err(), "off never yields");
    }
}
