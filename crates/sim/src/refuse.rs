//! The `refuse` fault refuses the exchange, not the simulator's own controls: while it lasts a new
//! connection is read just far enough to see its HTTP request path, and only requests to the
//! control routes (`/sim/...`) are admitted; everything else (WebSocket, `/v5/...` REST) is reset
//! like a refused exchange connection. Admission runs off the accept loop, so a slow client never
//! holds other connections up.

use std::time::Duration;

use tokio::net::TcpStream;

/// Longest wait for a new connection's request line while refusing.
const PEEK_TIMEOUT: Duration = Duration::from_secs(2);

/// The control routes' prefix.
const CONTROL_PREFIX: &[u8] = b"/sim/";

/// Whether `head` (the first bytes of a connection) is a request to a control route: `Some(true)`
/// or `Some(false)` once decided, `None` while more bytes are needed.
pub fn control_request(head: &[u8]) -> Option<bool> {
    let Some(space) = head.iter().position(|b| *b == b' ') else {
        // A method is at most 7 letters; anything longer is not HTTP we admit.
        return (head.len() > 8).then_some(false);
    };
    let path = &head[space + 1..];
    let n = path.len().min(CONTROL_PREFIX.len());
    if path[..n] != CONTROL_PREFIX[..n] {
        return Some(false);
    }
    (n == CONTROL_PREFIX.len()).then_some(true)
}

/// Peeks at `stream` (without consuming anything) until [`control_request`] decides; `false` on
/// timeout, end of stream or error.
pub async fn admits(stream: &TcpStream) -> bool {
    let deadline = tokio::time::Instant::now() + PEEK_TIMEOUT;
    let mut buf = [0u8; 32];
    let mut seen = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        if let Some(decided) = control_request(&buf[..n]) {
            return decided;
        }
        if n == buf.len() {
            return false;
        }
        if n == seen {
            // Peek returns what is there at once: wait a little for the rest of the line.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_control_routes_are_admitted() {
        assert_eq!(control_request(b"POST /sim/fault HTTP/1.1\r\n"), Some(true));
        assert_eq!(control_request(b"GET /sim/stats HTTP/1.1\r\n"), Some(true));
        assert_eq!(
            control_request(b"GET /v5/market/time HTTP/1.1"),
            Some(false)
        );
        assert_eq!(
            control_request(b"GET /v5/public/linear HTTP/1.1"),
            Some(false)
        );
        assert_eq!(control_request(b"GET /simulate HTTP/1.1"), Some(false));
        assert_eq!(control_request(b"GET /si"), None, "more bytes needed");
        assert_eq!(control_request(b"POST"), None);
        assert_eq!(
            control_request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"),
            Some(false)
        );
    }
}
