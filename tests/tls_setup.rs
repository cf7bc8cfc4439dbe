//! The TLS stack the mainnet defaults use (wss:// and https://) is wired: building the rustls
//! client (crypto provider, webpki roots) works, and a failed handshake is an error, not a panic.

use std::time::Duration;

#[tokio::test]
async fn wss_handshake_failure_is_an_error_not_a_panic() {
    // A server that accepts TCP and hangs up: the TLS client config is built, then the handshake fails.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!(
            "wss://localhost:{}/v5/public/linear",
            addr.port()
        )),
    )
    .await
    .expect("no hang");
    assert!(r.is_err(), "a hung-up TLS handshake is an error");
}

#[tokio::test]
async fn https_client_builds_and_fails_cleanly() {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("rustls client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let r = client
        .get(format!("https://localhost:{}/v5/market/time", addr.port()))
        .send()
        .await;
    assert!(r.is_err());
}
