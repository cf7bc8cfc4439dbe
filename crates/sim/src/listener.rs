//! The TCP side: an axum [`Listener`] that counts and can refuse connections (the `refuse` fault,
//! which spares the control routes: see [`super::refuse`]), and a socket wrapper that can end with
//! a TCP reset instead of a FIN (the `reset` fault).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::server::Shared;
use super::stats::Stats;

/// The remote address of a connection (axum `ConnectInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Accepts connections for the simulator.
pub struct SimListener {
    inner: TcpListener,
    shared: Arc<Shared>,
    /// Connections admitted while refusing (control requests), checked off the accept loop.
    admitted: mpsc::UnboundedReceiver<(TcpStream, SocketAddr)>,
    admit: mpsc::UnboundedSender<(TcpStream, SocketAddr)>,
}

impl SimListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, shared: Arc<Shared>) -> Self {
        let (admit, admitted) = mpsc::unbounded_channel();
        SimListener {
            inner,
            shared,
            admitted,
            admit,
        }
    }
}

impl Listener for SimListener {
    type Io = TrackedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TrackedIo, SocketAddr) {
        loop {
            // A connection admitted as a control request is served, not checked again (it would
            // go round until the fault ended).
            let (accepted, checked) = tokio::select! {
                a = self.admitted.recv() => (a.map(Ok), true),
                a = self.inner.accept() => (Some(a), false),
            };
            let (stream, addr) = match accepted {
                Some(Ok((stream, addr))) if !checked && self.shared.refusing() => {
                    // Only a control request gets through; decided on its own task.
                    let (shared, admit) = (Arc::clone(&self.shared), self.admit.clone());
                    tokio::spawn(async move {
                        if super::refuse::admits(&stream).await {
                            let _ = admit.send((stream, addr));
                        } else {
                            let _ = stream.set_zero_linger();
                            drop(stream);
                            Stats::add(&shared.stats.connections_refused, 1);
                        }
                    });
                    continue;
                }
                Some(Ok((stream, addr))) if !checked && self.shared.blackhole_left().is_some() => {
                    // Accepted, never answered (the control routes excepted) until it ends.
                    let (shared, admit) = (Arc::clone(&self.shared), self.admit.clone());
                    tokio::spawn(async move {
                        if super::refuse::admits(&stream).await {
                            let _ = admit.send((stream, addr));
                            return;
                        }
                        Stats::add(&shared.stats.connections_held, 1);
                        shared.hold_while_blackholed().await;
                        shared
                            .stats
                            .connections_held
                            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        drop(stream);
                    });
                    continue;
                }
                Some(Ok(x)) => x,
                _ => {
                    // Out of file descriptors and the like: back off briefly and go on.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let reset = Arc::new(AtomicBool::new(false));
            self.shared.register_socket(addr, Arc::clone(&reset));
            return (
                TrackedIo {
                    inner: stream,
                    addr,
                    reset,
                    shared: Arc::clone(&self.shared),
                },
                addr,
            );
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, SimListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// A TCP stream that resets (SO_LINGER 0) on drop when its flag is set.
pub struct TrackedIo {
    inner: TcpStream,
    addr: SocketAddr,
    reset: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Drop for TrackedIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Acquire) {
            let _ = self.inner.set_zero_linger();
        }
        self.shared.unregister_socket(&self.addr);
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
