//! Operator requests to a running feed. "Reconnect now" drops the live connection at once (or
//! ends a reconnect backoff wait early) and the feed takes its normal reconnect path: resubscribe
//! every topic, rebuild each book from a fresh snapshot, gap-fill the trades of the outage from
//! REST. "Resync" keeps the connection and resubscribes the book topics for fresh snapshots. The
//! connection loop and the backoff wait watch [`FeedControl`].

use tokio::sync::watch;

/// The latest request of a kind: how many were made so far and the last one's reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlRequest {
    /// Requests made so far (1 = the first).
    pub seq: u64,
    /// Why the last one was made (who asked, and their reason).
    pub reason: String,
}

/// Where requests to a feed are posted (one per feed, in its shared state).
#[derive(Debug)]
pub struct FeedControl {
    reconnect: watch::Sender<ControlRequest>,
    resync: watch::Sender<ControlRequest>,
}

impl Default for FeedControl {
    fn default() -> Self {
        FeedControl {
            reconnect: watch::channel(ControlRequest::default()).0,
            resync: watch::channel(ControlRequest::default()).0,
        }
    }
}

fn post(tx: &watch::Sender<ControlRequest>, reason: &str) -> u64 {
    let mut seq = 0;
    tx.send_modify(|r| {
        r.seq += 1;
        r.reason = reason.to_string();
        seq = r.seq;
    });
    seq
}

impl FeedControl {
    /// Asks the feed to drop its connection and reconnect; returns the request's number. A
    /// connection that opens after the request is not dropped (it already is the fresh one).
    pub fn request_reconnect(&self, reason: &str) -> u64 {
        post(&self.reconnect, reason)
    }

    /// Asks the live connection to resubscribe its book topics for fresh snapshots (nothing
    /// happens between connections: a new connection starts from snapshots anyway).
    pub fn request_resync(&self, reason: &str) -> u64 {
        post(&self.resync, reason)
    }

    /// Reconnect requests made so far.
    pub fn reconnects_requested(&self) -> u64 {
        self.reconnect.borrow().seq
    }

    /// Resync requests made so far.
    pub fn resyncs_requested(&self) -> u64 {
        self.resync.borrow().seq
    }

    /// A receiver that sees reconnect requests made from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<ControlRequest> {
        self.reconnect.subscribe()
    }

    /// A receiver that sees resync requests made from now on.
    pub(crate) fn subscribe_resync(&self) -> watch::Receiver<ControlRequest> {
        self.resync.subscribe()
    }
}

/// Resolves with the reason of the next request `rx` has not seen yet (never, if the control is
/// gone).
pub(crate) async fn requested(rx: &mut watch::Receiver<ControlRequest>) -> String {
    match rx.changed().await {
        Ok(()) => rx.borrow_and_update().reason.clone(),
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_wakes_only_receivers_that_have_not_seen_it() {
        let control = FeedControl::default();
        let mut before = control.subscribe();
        assert_eq!(control.request_reconnect("first"), 1);
        // A receiver subscribed after the request has nothing pending.
        let mut after = control.subscribe();
        assert_eq!(requested(&mut before).await, "first");
        assert!(!after.has_changed().unwrap());
        assert!(!before.has_changed().unwrap());
        assert_eq!(control.request_reconnect("second"), 2);
        assert_eq!(requested(&mut after).await, "second");
        assert_eq!(control.reconnects_requested(), 2);
    }

    #[tokio::test]
    async fn requests_without_any_receiver_are_kept() {
        let control = FeedControl::default();
        control.request_reconnect("nobody listening");
        assert_eq!(control.reconnects_requested(), 1);
    }
}
