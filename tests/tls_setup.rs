//! The feed's own connector speaks TLS to `wss://` endpoints (the mainnet default): pointed at a
//! `wss://localhost:PORT` endpoint, `Feed::spawn` opens the socket with a TLS ClientHello naming
//! the host (SNI), and a handshake the server breaks off is a failed attempt the feed counts,
//! reports as `down` and retries, never a panic or a silent stall. (A build without the TLS
//! feature would fail before sending anything: "TLS support not compiled in".)

use std::time::Duration;

use hft_connector::feed::{Feed, FeedConfig};
use hft_connector::protocol::Category;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// A hang guard only.
const GUARD: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_opens_wss_with_a_tls_client_hello_and_retries_a_broken_handshake() {
    // A server that reads what the client sends first, then hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (hello_tx, mut hellos) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(GUARD, sock.read(&mut buf))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            buf.truncate(n);
            let _ = hello_tx.send(buf);
            drop(sock);
        }
    });
    let mut cfg = FeedConfig::new(
        &format!("wss://localhost:{port}/v5/public"),
        &format!("https://localhost:{port}"),
        Category::Linear,
        &["BTCUSDT"],
    )
    .with_fast_timers(1.0);
    cfg.reconnect.initial_delay_s = 0.05;
    cfg.reconnect.max_delay_s = 0.1;
    let feed = Feed::spawn(cfg).expect("valid config");

    for attempt in 1..=2 {
        let hello = tokio::time::timeout(GUARD, hellos.recv())
            .await
            .expect("the feed connects")
            .expect("the server runs");
        // A TLS record of type handshake (22), TLS 1.x, carrying a ClientHello (1).
        assert!(hello.len() > 43, "attempt {attempt}: {hello:?}");
        assert_eq!(
            hello[0], 22,
            "attempt {attempt}: not a TLS handshake record"
        );
        assert_eq!(hello[1], 3, "attempt {attempt}: not TLS 1.x");
        assert_eq!(hello[5], 1, "attempt {attempt}: not a ClientHello");
        assert!(
            hello.windows(b"localhost".len()).any(|w| w == b"localhost"),
            "attempt {attempt}: the ClientHello names the host (SNI)"
        );
    }
    // The broken handshakes are counted failed attempts and the feed says it cannot deliver.
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let h = feed.health();
        if h.error_count >= 2 && h.status == "down" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{h:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!feed.is_connected());
    tokio::time::timeout(GUARD, feed.shutdown())
        .await
        .expect("the feed stops");
}
