//! Ground truth: every published trade and book update as a normalized [`Event`], kept in a bounded
//! ring per symbol (`GET /sim/journal`) and optionally appended to a JSON-lines file.

use std::collections::{HashMap, VecDeque};
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::normalized::Event;

/// The in-memory journal and the file writer.
#[derive(Debug)]
pub struct Journal {
    rings: HashMap<String, VecDeque<Event>>,
    capacity: usize,
    file: Option<SyncSender<Event>>,
    writer: Option<JoinHandle<()>>,
}

/// Which events a journal query wants.
#[derive(Debug, Clone, Default)]
pub struct JournalQuery<'a> {
    /// Only this symbol.
    pub symbol: Option<&'a str>,
    /// `trade` or `book`.
    pub kind: Option<&'a str>,
    /// Only events with `ts_ms >= since_ms`.
    pub since_ms: Option<u64>,
    /// Only this category (`linear`, `spot`, `inverse`).
    pub category: Option<&'a str>,
    /// Only book events of this depth.
    pub depth: Option<u16>,
}

impl Journal {
    /// A journal keeping `capacity` events per symbol, also writing to `file` when given.
    pub fn new(capacity: usize, file: Option<&Path>) -> std::io::Result<Self> {
        let (file, writer) = match file {
            None => (None, None),
            Some(path) => {
                let f = OpenOptions::new().create(true).append(true).open(path)?;
                let (tx, rx) = sync_channel::<Event>(65_536);
                let handle = std::thread::Builder::new()
                    .name("sim-journal".into())
                    .spawn(move || {
                        let mut out = BufWriter::with_capacity(1 << 20, f);
                        loop {
                            match rx.recv_timeout(Duration::from_millis(200)) {
                                Ok(e) => {
                                    if serde_json::to_writer(&mut out, &e).is_err()
                                        || out.write_all(b"\n").is_err()
                                    {
                                        break;
                                    }
                                }
                                Err(RecvTimeoutError::Timeout) => {
                                    let _ = out.flush();
                                }
                                Err(RecvTimeoutError::Disconnected) => break,
                            }
                        }
                        let _ = out.flush();
                    })?;
                (Some(tx), Some(handle))
            }
        };
        Ok(Journal {
            rings: HashMap::new(),
            capacity: capacity.max(1),
            file,
            writer,
        })
    }

    /// Records one event.
    pub fn record(&mut self, event: Event) {
        if let Some(tx) = &self.file {
            if tx.send(event.clone()).is_err() {
                self.file = None;
            }
        }
        let symbol = match &event {
            Event::Trade(t) => t.symbol.as_str(),
            Event::Book(b) => b.symbol.as_str(),
            _ => "",
        };
        let ring = match self.rings.get_mut(symbol) {
            Some(r) => r,
            None => self.rings.entry(symbol.to_string()).or_default(),
        };
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// Events matching `q`, oldest first per symbol.
    pub fn query(&self, q: &JournalQuery<'_>) -> Vec<Event> {
        let mut out = Vec::new();
        let mut symbols: Vec<&String> = self
            .rings
            .keys()
            .filter(|s| q.symbol.is_none_or(|want| want == s.as_str()))
            .collect();
        symbols.sort();
        for s in symbols {
            let Some(ring) = self.rings.get(s) else {
                continue;
            };
            out.extend(ring.iter().filter(|e| matches(e, q)).cloned());
        }
        out
    }

    /// Events kept in memory.
    pub fn len(&self) -> usize {
        self.rings.values().map(VecDeque::len).sum()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the file writer after it wrote everything queued.
    pub fn close(&mut self) {
        self.file = None;
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

fn matches(e: &Event, q: &JournalQuery<'_>) -> bool {
    let (kind, ts, category, depth) = match e {
        Event::Trade(t) => ("trade", t.ts_ms, t.category.as_deref(), None),
        Event::Book(b) => ("book", b.ts_ms, b.category.as_deref(), Some(b.depth)),
        _ => ("other", 0, None, None),
    };
    q.kind.is_none_or(|k| k == kind)
        && q.since_ms.is_none_or(|s| ts >= s)
        && q.category.is_none_or(|c| category == Some(c))
        && q.depth.is_none_or(|d| depth == Some(d))
}
