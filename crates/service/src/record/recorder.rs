//! [`Recorder`]: the writer thread behind `[sinks.record]`. Taps (one per category) queue raw
//! frames into a bounded channel without waiting; the thread routes each frame to the segment of
//! its category, symbol (from the topic; `_control` for acks and pongs) and period, flushes every
//! `flush_interval_ms`, rotates at period ends, and counts everything it writes, drops or loses.
//! A write error (a full disk) is logged, counted and shown in `/api/status`; recording resumes
//! by itself when writes succeed again, and the live feed never waits for the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::{RecordSection, Rotate};
use super::segment::Segment;
use super::{RawSink, RawTap};
use crate::protocol::Category;

/// Counters shared by the taps, the writer thread and the status API.
#[derive(Debug, Default)]
pub struct RecordStats {
    dir: PathBuf,
    frames: AtomicU64,
    text_bytes: AtomicU64,
    file_bytes: AtomicU64,
    dropped: AtomicU64,
    lost: AtomicU64,
    write_errors: AtomicU64,
    segments: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The recorder's state as `/api/status` shows it (`record`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordStatus {
    /// Root directory.
    pub dir: String,
    /// Frames written to files.
    pub frames: u64,
    /// Bytes of `<ns> <json>` text written (before compression).
    pub text_bytes: u64,
    /// Bytes written to files.
    pub file_bytes: u64,
    /// Frames dropped because the writer queue was full (the live path never waits).
    pub dropped: u64,
    /// Frames lost to failed writes (e.g. a full disk).
    pub lost: u64,
    /// Failed writes or file creations.
    pub write_errors: u64,
    /// Segments opened.
    pub segments: u64,
    /// The last write error, if any.
    pub last_error: Option<String>,
}

impl RecordStats {
    /// A snapshot for status APIs.
    pub fn status(&self) -> RecordStatus {
        RecordStatus {
            dir: self.dir.display().to_string(),
            frames: self.frames.load(Relaxed),
            text_bytes: self.text_bytes.load(Relaxed),
            file_bytes: self.file_bytes.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            lost: self.lost.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            segments: self.segments.load(Relaxed),
            last_error: self.last_error.lock().map(|e| e.clone()).unwrap_or(None),
        }
    }

    fn failed(&self, lost: u64, error: String) {
        self.lost.fetch_add(lost, Relaxed);
        self.write_errors.fetch_add(1, Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(error);
        }
    }
}

enum Msg {
    Frame {
        category: Category,
        recv_ns: u64,
        text: String,
    },
    Stop,
}

struct CategorySink {
    tx: SyncSender<Msg>,
    category: Category,
    stats: Arc<RecordStats>,
}

impl RawSink for CategorySink {
    fn offer(&self, recv_ns: u64, text: &str) {
        let msg = Msg::Frame {
            category: self.category,
            recv_ns,
            text: text.to_string(),
        };
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
        }
    }
}

/// A running recorder.
#[derive(Debug)]
pub struct Recorder {
    tx: SyncSender<Msg>,
    stats: Arc<RecordStats>,
    thread: Option<JoinHandle<()>>,
    /// Set by [`Recorder::stop`]: the thread writes what is queued and ends.
    stopping: Arc<AtomicBool>,
}

impl Recorder {
    /// Validates `cfg`, creates its directory (failing fast if it cannot) and starts the writer
    /// thread.
    pub fn start(cfg: RecordSection) -> anyhow::Result<Recorder> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.dir).map_err(|e| {
            anyhow::anyhow!(
                "invalid configuration: sinks.record.dir: cannot create {}: {e}",
                cfg.dir.display()
            )
        })?;
        let (tx, rx) = sync_channel(cfg.queue_capacity);
        let stats = Arc::new(RecordStats {
            dir: cfg.dir.clone(),
            ..RecordStats::default()
        });
        let thread_stats = stats.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let thread_stopping = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || Writer::new(cfg, thread_stats).run(rx, &thread_stopping))?;
        tracing::info!(event = "record_started", dir = %stats.dir.display());
        Ok(Recorder {
            tx,
            stats,
            thread: Some(thread),
            stopping,
        })
    }

    /// The tap a feed of `category` offers its raw frames to.
    pub fn tap(&self, category: Category) -> RawTap {
        RawTap::new(Arc::new(CategorySink {
            tx: self.tx.clone(),
            category,
            stats: self.stats.clone(),
        }))
    }

    /// The shared counters.
    pub fn stats(&self) -> Arc<RecordStats> {
        self.stats.clone()
    }

    /// Writes everything queued, closes the files and ends the thread (blocking). Never waits
    /// for room in a full queue: the thread sees the request at its next wake-up.
    pub fn stop(mut self) {
        self.stopping.store(true, Relaxed);
        let _ = self.tx.try_send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.tx.try_send(Msg::Stop);
        }
    }
}

/// The stream a frame belongs to: the symbol of its topic (`orderbook.50.BTCUSDT` -> `BTCUSDT`),
/// or `_control` for frames without one (acks, pongs). Only `[A-Za-z0-9_-]` ever reaches a path.
pub fn stream_of(text: &str) -> &str {
    const KEY: &str = "\"topic\":\"";
    let Some(at) = text.find(KEY) else {
        return "_control";
    };
    let rest = &text[at + KEY.len()..];
    let topic = rest.split('"').next().unwrap_or("");
    let symbol = topic.rsplit('.').next().unwrap_or("");
    if symbol.is_empty()
        || symbol.len() > 40
        || !symbol
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return "_other";
    }
    symbol
}

/// The UTC period of `recv_ns`: `YYYYMMDD` (day) or `YYYYMMDDTHH` (hour).
pub fn period_of(recv_ns: u64, rotate: Rotate) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(recv_ns as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let day = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
    match rotate {
        Rotate::Day => day,
        Rotate::Hour => format!("{day}T{:02}", t.hour()),
    }
}

/// How often the writer takes what the feeds queued.
const POLL: Duration = Duration::from_millis(10);

/// Flush a segment early when this much text is buffered.
const MAX_BUFFERED: usize = 4 * 1024 * 1024;

struct Writer {
    cfg: RecordSection,
    stats: Arc<RecordStats>,
    segments: HashMap<(Category, String), Segment>,
    reported_drops: u64,
    last_error_log: Option<Instant>,
}

impl Writer {
    fn new(cfg: RecordSection, stats: Arc<RecordStats>) -> Self {
        Writer {
            cfg,
            stats,
            segments: HashMap::new(),
            reported_drops: 0,
            last_error_log: None,
        }
    }

    /// Wakes every [`POLL`] (or flush interval, if shorter) and takes everything queued: the
    /// feeds never wake this thread per frame (a wake-up per frame cost more CPU than the writing).
    fn run(mut self, rx: Receiver<Msg>, stopping: &AtomicBool) {
        let every = Duration::from_millis(self.cfg.flush_interval_ms);
        let poll = every.min(POLL);
        let mut next_flush = Instant::now() + every;
        'run: loop {
            std::thread::sleep(poll);
            loop {
                match rx.try_recv() {
                    Ok(Msg::Frame {
                        category,
                        recv_ns,
                        text,
                    }) => self.write(category, recv_ns, &text),
                    Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => break 'run,
                    Err(TryRecvError::Empty) => break,
                }
            }
            if stopping.load(Relaxed) {
                break 'run;
            }
            if Instant::now() >= next_flush {
                self.flush_all();
                next_flush = Instant::now() + every;
            }
        }
        self.flush_all();
        let s = self.stats.status();
        tracing::info!(
            event = "record_stopped",
            frames = s.frames,
            dropped = s.dropped,
            lost = s.lost,
            write_errors = s.write_errors,
            segments = s.segments,
        );
    }

    fn write(&mut self, category: Category, recv_ns: u64, text: &str) {
        let stream = stream_of(text).to_string();
        let period = period_of(recv_ns, self.cfg.rotate);
        let key = (category, stream);
        if self.segments.get(&key).is_some_and(|s| s.period != period) {
            if let Some(mut old) = self.segments.remove(&key) {
                self.flush(&mut old);
            }
        }
        if !self.segments.contains_key(&key) {
            let dir = self.cfg.dir.join(category.as_str()).join(&key.1);
            let stem = format!("{}-{period}", key.1);
            match Segment::create(&dir, &stem, &period, self.cfg.compress) {
                Ok(seg) => {
                    tracing::info!(event = "record_segment_opened", path = %seg.path().display());
                    self.stats.segments.fetch_add(1, Relaxed);
                    self.segments.insert(key.clone(), seg);
                }
                Err(e) => {
                    self.error(&dir, 1, e.to_string());
                    return;
                }
            }
        }
        if let Some(seg) = self.segments.get_mut(&key) {
            seg.push(recv_ns, text);
            if seg.buffered() >= MAX_BUFFERED {
                let mut seg = self.segments.remove(&key);
                if let Some(s) = seg.as_mut() {
                    self.flush(s);
                }
                if let Some(s) = seg {
                    self.segments.insert(key, s);
                }
            }
        }
    }

    fn flush_all(&mut self) {
        let mut segs = std::mem::take(&mut self.segments);
        for seg in segs.values_mut() {
            self.flush(seg);
        }
        self.segments = segs;
        let dropped = self.stats.dropped.load(Relaxed);
        if dropped > self.reported_drops {
            tracing::warn!(
                event = "record_frames_dropped",
                dropped = dropped - self.reported_drops,
                dropped_total = dropped,
                queue_capacity = self.cfg.queue_capacity,
            );
            self.reported_drops = dropped;
        }
    }

    fn flush(&mut self, seg: &mut Segment) {
        match seg.flush() {
            Ok(f) => {
                self.stats.frames.fetch_add(f.lines, Relaxed);
                self.stats.text_bytes.fetch_add(f.text_bytes, Relaxed);
                self.stats.file_bytes.fetch_add(f.file_bytes, Relaxed);
            }
            Err(e) => {
                let path = seg.path().to_path_buf();
                self.error(&path, e.lines, e.error.to_string());
            }
        }
    }

    /// Counts a failed write; logs it at most once a second (with the totals).
    fn error(&mut self, path: &Path, lost: u64, error: String) {
        self.stats.failed(lost, error.clone());
        if self
            .last_error_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_error_log = Some(Instant::now());
            let s = self.stats.status();
            tracing::error!(
                event = "record_write_failed",
                path = %path.display(),
                error = %error,
                lost_total = s.lost,
                write_errors = s.write_errors,
            );
        }
    }
}

#[cfg(test)]
mod tests;
