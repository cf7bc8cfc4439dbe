//! The consumers measured against the generator, each in its own process pinned to one core:
//! `raw` (counts WebSocket frames by their headers: the generator's ceiling), `drain` (a plain
//! tokio-tungstenite client: the baseline), `in-process` and `process` (hft-feed's `FeedSource`
//! with `Isolation::InProcess` / `Isolation::Process`, consumed from a task of a multi-thread
//! runtime, as the service does), `in-process-main` / `process-main` (the same loop directly in
//! the runtime's `block_on`, as the README's `#[tokio::main]` example writes it: no
//! `tokio::spawn`), and `in-process-busy` / `process-busy` (the spawned loop with
//! `feed.busy_poll_us`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use hft_connector::feed::{FeedConfig, FeedEvent};
use hft_connector::protocol::Category;
use hft_connector::source::{FeedSource, Isolation};
use hft_connector::worker::WorkerOptions;
use tokio_tungstenite::tungstenite::Message;

use crate::frames::{BOOK_TOPIC, SYMBOL, TRADE_TOPIC};
use crate::measure::{Measurement, Window};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `raw`, `drain`, `in-process`, `process`, or one of those two with `-main` or `-busy`.
    pub mode: String,
    /// Generator address.
    pub addr: String,
    /// Paced rate (0: saturation).
    pub rate: f64,
    /// Warm-up after the first market message (s).
    pub warmup: f64,
    /// Window (s).
    pub seconds: f64,
    /// The generator's pid (for its CPU use).
    pub gen_pid: Option<u32>,
    /// The `hft-connector` executable (process mode).
    pub worker: PathBuf,
    /// `feed.busy_poll_us` of the `-busy` modes.
    pub busy_poll_us: u64,
}

impl Plan {
    fn ws_base(&self) -> String {
        format!("ws://{}/pace/{}/v5/public", self.addr, self.rate)
    }
    fn subscribe(&self) -> String {
        format!(r#"{{"req_id":"b1","op":"subscribe","args":["{TRADE_TOPIC}","{BOOK_TOPIC}"]}}"#)
    }
}

/// Runs one measurement.
pub fn run(plan: &Plan) -> anyhow::Result<Measurement> {
    match plan.mode.as_str() {
        "raw" => raw(plan),
        "drain" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(drain(plan.clone())),
        "in-process" | "process" | "in-process-busy" | "process-busy" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let plan = plan.clone();
            rt.block_on(async move { tokio::spawn(feed(plan)).await? })
        }
        // What `#[tokio::main]` expands to: a multi-thread runtime whose `block_on` (the main
        // thread, not a runtime worker) runs the loop itself.
        "in-process-main" | "process-main" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(feed(plan.clone())),
        other => bail!(
            "unknown mode {other:?}: expected raw, drain, in-process, process, in-process-main, process-main, in-process-busy or process-busy"
        ),
    }
}

/// The send stamp of a generator frame: the `seq` field (the frame's last `"seq":`).
fn stamp_of(text: &str) -> Option<u64> {
    let at = text.rfind("\"seq\":")? + 6;
    text.get(at..at + 19)?.parse().ok()
}

async fn drain(plan: Plan) -> anyhow::Result<Measurement> {
    let url = format!("{}/linear", plan.ws_base());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    ws.send(Message::text(plan.subscribe())).await?;
    let paced = plan.rate > 0.0;
    let mut warm_until = None;
    let mut window: Option<Window> = None;
    let mut end = Instant::now() + Duration::from_secs(30);
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let now = Instant::now();
        let Some(until) = warm_until else {
            if text.as_str().contains("\"topic\"") {
                warm_until = Some(now + Duration::from_secs_f64(plan.warmup));
            }
            continue;
        };
        match window.as_mut() {
            Some(w) => w.record(if paced { stamp_of(text.as_str()) } else { None }),
            None if now >= until => {
                window = Some(Window::start(paced, plan.gen_pid, None));
                end = now + Duration::from_secs_f64(plan.seconds);
            }
            None => {}
        }
        if now >= end {
            break;
        }
    }
    match window {
        Some(w) => Ok(w.finish("drain", plan.rate)),
        None => bail!("the stream ended before the measurement window"),
    }
}

async fn feed(plan: Plan) -> anyhow::Result<Measurement> {
    let (isolation, busy) = match plan.mode.strip_suffix("-busy") {
        Some(m) => (m, plan.busy_poll_us),
        None => (plan.mode.trim_end_matches("-main"), 0),
    };
    let isolation: Isolation = isolation.parse().map_err(anyhow::Error::msg)?;
    let mut cfg = FeedConfig::new(
        &plan.ws_base(),
        &format!("http://{}", plan.addr),
        Category::Linear,
        &[SYMBOL],
    );
    cfg.feed.depth = 50;
    cfg.feed.busy_poll_us = busy;
    let mut source =
        FeedSource::spawn_with(cfg, isolation, WorkerOptions::with_program(&plan.worker))?;
    let paced = plan.rate > 0.0;
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(ev) = source.next().await {
            if ev.is_market() {
                return true;
            }
        }
        false
    })
    .await;
    if first != Ok(true) {
        source.shutdown().await;
        bail!("no market event within 30 s ({} mode)", plan.mode);
    }
    let warm_until = Instant::now() + Duration::from_secs_f64(plan.warmup);
    while Instant::now() < warm_until {
        let next = tokio::time::timeout_at(warm_until.into(), source.next()).await;
        if let Ok(None) = next {
            bail!("the feed ended during warm-up");
        }
    }
    let mut w = Window::start(paced, plan.gen_pid, source.pid());
    let until = Instant::now() + Duration::from_secs_f64(plan.seconds);
    // The timer ends an idle window; under load the stream is always ready, so the clock is also
    // read every 256 messages (a timer polled after a ready stream would starve).
    let end = tokio::time::sleep_until(until.into());
    tokio::pin!(end);
    loop {
        tokio::select! {
            biased;
            _ = &mut end => break,
            ev = source.next() => match ev {
                Some(FeedEvent::Trade(t)) => w.record(t.seq),
                Some(FeedEvent::Book(b)) => w.record(b.seq),
                Some(_) => {}
                None => bail!("the feed ended during the measurement"),
            },
        }
        if w.messages % 256 == 0 && Instant::now() >= until {
            break;
        }
    }
    let m = w.finish(&plan.mode, plan.rate);
    match source {
        // Dropping the handle cancels the feed and closes its queue. Not `shutdown().await`: it
        // keeps the queue open while it waits, and a feed blocked on a full queue never ends.
        FeedSource::InProcess(_) => drop(source),
        // The worker gets SIGTERM (and exits by itself once its stdin closes).
        FeedSource::Process(_) | FeedSource::Lines(_) => {
            let _ = tokio::time::timeout(Duration::from_secs(10), source.shutdown()).await;
        }
    }
    Ok(m)
}

/// Counts text frames by parsing WebSocket headers only: what the generator can push through the
/// loopback socket when the client does nothing else.
fn raw(plan: &Plan) -> anyhow::Result<Measurement> {
    let mut s = TcpStream::connect(&plan.addr)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET /pace/{}/v5/public/linear HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        plan.rate, plan.addr
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            bail!("the generator closed during the handshake");
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("handshake refused: {}", String::from_utf8_lossy(&head));
    }
    // A client frame must be masked; a zero mask leaves the payload as is.
    let sub = plan.subscribe();
    let mut frame = vec![0x81];
    match u8::try_from(sub.len()) {
        Ok(n) if n < 126 => frame.push(0x80 | n),
        _ => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(sub.len() as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(sub.as_bytes());
    s.write_all(&frame)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut filled, mut pos) = (0usize, 0usize);
    let mut warm_until: Option<Instant> = None;
    let mut window: Option<(Window, Instant)> = None;
    loop {
        // Keep a partial frame: move it to the front, then read more.
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        pos = 0;
        let n = s.read(&mut buf[filled..])?;
        if n == 0 {
            bail!("the generator closed the stream");
        }
        filled += n;
        let mut frames = 0u64;
        while let Some((len, opcode)) = frame_len(&buf[pos..filled]) {
            if filled - pos < len {
                break;
            }
            pos += len;
            frames += u64::from(opcode == 1);
        }
        let now = Instant::now();
        match (&mut window, warm_until) {
            (Some((w, end)), _) => {
                w.messages += frames;
                if now >= *end {
                    break;
                }
            }
            (None, None) if frames > 1 => {
                warm_until = Some(now + Duration::from_secs_f64(plan.warmup));
            }
            (None, Some(until)) if now >= until => {
                let end = now + Duration::from_secs_f64(plan.seconds);
                window = Some((Window::start(false, plan.gen_pid, None), end));
            }
            _ => {}
        }
    }
    match window {
        Some((w, _)) => Ok(w.finish("raw", plan.rate)),
        None => bail!("no measurement window"),
    }
}

/// (total length, opcode) of the unmasked server frame at the start of `b`, if its header is whole.
fn frame_len(b: &[u8]) -> Option<(usize, u8)> {
    let (&b0, &b1) = (b.first()?, b.get(1)?);
    let (header, len) = match b1 & 0x7f {
        126 => (4, u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize),
        127 => (
            10,
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
        ),
        n => (2, n as usize),
    };
    Some((header + len, b0 & 0x0f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_from_headers() {
        assert_eq!(frame_len(&[0x81, 5, b'h']), Some((7, 1)));
        assert_eq!(frame_len(&[0x81, 126, 1, 0]), Some((260, 1)));
        assert_eq!(frame_len(&[0x81, 126, 1]), None);
        assert_eq!(frame_len(&[0x8a]), None);
    }

    #[test]
    fn the_stamp_is_the_last_seq() {
        let t = r#"{"data":{"u":1000000001,"seq":1780000000123456789},"cts":1780000000123}"#;
        assert_eq!(stamp_of(t), Some(1_780_000_000_123_456_789));
        assert_eq!(stamp_of(r#"{"seq":12}"#), None);
    }
}
