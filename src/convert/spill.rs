//! Ordering more rows than the memory budget holds (an external merge sort): rows are taken in
//! chunks, each chunk is sorted twice (by exchange time and by local time, stably) and written as
//! two sorted runs to a temporary directory; runs are then k-way merged (in several passes when
//! there are more than the budget's read buffers allow) into the two orders hftbacktest's
//! `correct_event_order` walks, and its merge writes the events to a temporary file whose row
//! count the `.npy` header needs before the `.npz` is written from it.
//!
//! Stability: a tie in a merge goes to the earlier run, and runs hold consecutive chunks of the
//! input, so every order equals numpy's stable sort of all rows: the output is byte for byte the
//! in-memory conversion's. The temporary directory is removed when the sort ends, whether it
//! succeeded or failed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::hftbacktest::Event;
use super::npy::{decode, encode, ROW};
use super::order::merge_sorted;

/// Memory a row costs while a chunk is sorted: the row, its index and the sort's scratch.
pub const ROW_COST: usize = ROW + 8;

/// Smallest read buffer a run gets in a merge; fewer, larger reads beat many small ones, so runs
/// are merged in several passes rather than with smaller buffers.
const MIN_READ_BUF: usize = 64 * 1024;

/// Largest read buffer a run gets in a merge.
const MAX_READ_BUF: usize = 1 << 20;

/// Rows of one in-memory chunk for a budget of `budget` bytes: half the budget (a growing chunk
/// briefly holds its old and new allocation), at least one row.
pub fn chunk_rows(budget: usize) -> usize {
    (budget / 2 / ROW_COST).clamp(1, u32::MAX as usize)
}

/// Which timestamp a run is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Exch,
    Local,
}

impl Key {
    fn of(self, e: &Event) -> i64 {
        match self {
            Key::Exch => e.exch_ts,
            Key::Local => e.local_ts,
        }
    }
}

/// A sorted run on disk.
#[derive(Debug)]
struct Run {
    path: PathBuf,
    rows: u64,
}

/// Sorted runs of both orders in a temporary directory (removed on drop).
#[derive(Debug)]
pub struct Spill {
    dir: tempfile::TempDir,
    exch: Vec<Run>,
    local: Vec<Run>,
    files: u64,
    rows: u64,
    min_latency: Option<i64>,
    budget: usize,
}

impl Spill {
    /// A spill directory (`.hft-convert-*`) inside `parent`, for a sort within `budget` bytes.
    pub fn new(parent: &Path, budget: usize) -> io::Result<Spill> {
        let dir = tempfile::Builder::new()
            .prefix(".hft-convert-")
            .tempdir_in(parent)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", parent.display())))?;
        Ok(Spill {
            dir,
            exch: Vec::new(),
            local: Vec::new(),
            files: 0,
            rows: 0,
            min_latency: None,
            budget,
        })
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Chunks written so far.
    pub fn runs(&self) -> usize {
        self.exch.len()
    }

    fn new_file(&mut self) -> io::Result<(PathBuf, BufWriter<File>)> {
        self.files += 1;
        let path = self.dir.path().join(format!("run-{:06}", self.files));
        let file = File::create(&path)?;
        Ok((path, BufWriter::with_capacity(MAX_READ_BUF, file)))
    }

    /// Writes one chunk (`rows`, in input order) as a run sorted by exchange time and one sorted
    /// by local time.
    pub fn push_chunk(&mut self, rows: &[Event]) -> io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(m) = rows
            .iter()
            .map(|r| r.local_ts.wrapping_sub(r.exch_ts))
            .min()
        {
            self.min_latency = Some(self.min_latency.map_or(m, |x| x.min(m)));
        }
        let n = u32::try_from(rows.len()).map_err(io::Error::other)?;
        let mut idx: Vec<u32> = (0..n).collect();
        for key in [Key::Exch, Key::Local] {
            // The index breaks ties: the same order as a stable sort, without its scratch.
            idx.sort_unstable_by_key(|&i| (key.of(&rows[i as usize]), i));
            let (path, mut out) = self.new_file()?;
            for &i in &idx {
                out.write_all(&encode(&rows[i as usize]))?;
            }
            out.flush()?;
            let run = Run {
                path,
                rows: rows.len() as u64,
            };
            match key {
                Key::Exch => self.exch.push(run),
                Key::Local => self.local.push(run),
            }
        }
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Runs merged at once: as many as get a [`MIN_READ_BUF`] each from half the budget, with
    /// both orders open together, at least two.
    fn fan_in(&self) -> usize {
        (self.budget / 2 / (2 * MIN_READ_BUF)).max(2)
    }

    fn read_buf(&self, open: usize) -> usize {
        (self.budget / 2 / open.max(1)).clamp(MIN_READ_BUF, MAX_READ_BUF)
    }

    /// Merges runs of one order in groups until at most [`Self::fan_in`] remain.
    fn reduce(&mut self, key: Key) -> io::Result<()> {
        let fan_in = self.fan_in();
        loop {
            let runs = match key {
                Key::Exch => std::mem::take(&mut self.exch),
                Key::Local => std::mem::take(&mut self.local),
            };
            if runs.len() <= fan_in {
                match key {
                    Key::Exch => self.exch = runs,
                    Key::Local => self.local = runs,
                }
                return Ok(());
            }
            let buf = self.read_buf(fan_in + 1);
            let mut merged = Vec::with_capacity(runs.len().div_ceil(fan_in));
            let mut runs = runs.into_iter().peekable();
            while runs.peek().is_some() {
                // Consecutive runs only: a tie still goes to the earlier input row.
                let group: Vec<Run> = runs.by_ref().take(fan_in).collect();
                let (path, mut out) = self.new_file()?;
                let mut merge = RunMerge::open(&group, key, 0, buf)?;
                let mut rows = 0u64;
                for e in merge.by_ref() {
                    out.write_all(&encode(&e))?;
                    rows += 1;
                }
                merge.finish()?;
                out.flush()?;
                for r in &group {
                    let _ = std::fs::remove_file(&r.path);
                }
                merged.push(Run { path, rows });
            }
            match key {
                Key::Exch => self.exch = merged,
                Key::Local => self.local = merged,
            }
        }
    }

    /// Orders every row pushed as hftbacktest requires (shifting local times by
    /// `correct_local_timestamp`'s rule with `base_latency`) into a temporary file of events;
    /// returns it and how many events it holds.
    pub fn order(&mut self, base_latency: i64) -> io::Result<(PathBuf, u64)> {
        self.reduce(Key::Exch)?;
        self.reduce(Key::Local)?;
        let offset = match self.min_latency {
            Some(m) if m < 0 => base_latency.wrapping_sub(m),
            _ => 0,
        };
        let buf = self.read_buf(self.exch.len() + self.local.len());
        let mut by_exch = RunMerge::open(&self.exch, Key::Exch, offset, buf)?;
        let mut by_local = RunMerge::open(&self.local, Key::Local, offset, buf)?;
        let (path, mut out) = self.new_file()?;
        let mut error: Option<io::Error> = None;
        let events = merge_sorted(by_exch.by_ref(), by_local.by_ref(), |e| {
            if error.is_none() {
                if let Err(e) = out.write_all(&encode(&e)) {
                    error = Some(e);
                }
            }
        });
        by_exch.finish()?;
        by_local.finish()?;
        if let Some(e) = error {
            return Err(e);
        }
        out.flush()?;
        // The sorted runs are no longer needed: give their disk space back before the `.npz`.
        for r in self.exch.drain(..).chain(self.local.drain(..)) {
            let _ = std::fs::remove_file(&r.path);
        }
        Ok((path, events as u64))
    }

    /// Rows pushed.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// Reads the events [`Spill::order`] wrote, one at a time, into `emit`.
pub fn replay(path: &Path, emit: &mut dyn FnMut(Event)) -> io::Result<u64> {
    let mut r = BufReader::with_capacity(MAX_READ_BUF, File::open(path)?);
    let mut bytes = [0u8; ROW];
    let mut n = 0u64;
    loop {
        match r.read_exact(&mut bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
            Err(e) => return Err(e),
        }
        emit(decode(&bytes));
        n += 1;
    }
}

/// One run being read.
struct RunReader {
    r: BufReader<File>,
    left: u64,
}

impl RunReader {
    fn next(&mut self) -> io::Result<Option<Event>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut bytes = [0u8; ROW];
        self.r.read_exact(&mut bytes)?;
        self.left -= 1;
        Ok(Some(decode(&bytes)))
    }
}

/// A k-way merge of runs sorted by one key, as an iterator; an I/O error ends it and is returned
/// by [`RunMerge::finish`].
struct RunMerge {
    readers: Vec<RunReader>,
    heads: Vec<Option<Event>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    key: Key,
    offset: i64,
    error: Option<io::Error>,
}

impl RunMerge {
    fn open(runs: &[Run], key: Key, offset: i64, buf: usize) -> io::Result<RunMerge> {
        let mut m = RunMerge {
            readers: Vec::with_capacity(runs.len()),
            heads: vec![None; runs.len()],
            heap: BinaryHeap::with_capacity(runs.len()),
            key,
            offset,
            error: None,
        };
        for (i, run) in runs.iter().enumerate() {
            let file = File::open(&run.path)?;
            m.readers.push(RunReader {
                r: BufReader::with_capacity(buf, file),
                left: run.rows,
            });
            m.advance(i);
        }
        match m.error.take() {
            Some(e) => Err(e),
            None => Ok(m),
        }
    }

    /// Reads run `i`'s next row into the heap.
    fn advance(&mut self, i: usize) {
        match self.readers[i].next() {
            Ok(Some(mut e)) => {
                e.local_ts = e.local_ts.wrapping_add(self.offset);
                // Runs are sorted before the shift; the shift is the same for every row.
                let k = self.key.of(&e);
                self.heads[i] = Some(e);
                self.heap.push(Reverse((k, i)));
            }
            Ok(None) => self.heads[i] = None,
            Err(e) => {
                self.heads[i] = None;
                self.error.get_or_insert(e);
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Iterator for RunMerge {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.error.is_some() {
            return None;
        }
        let Reverse((_, i)) = self.heap.pop()?;
        let e = self.heads[i].take()?;
        self.advance(i);
        if self.error.is_some() {
            return None;
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests;
