//! Input files for `convert`: one frame per line, `<local receive ns> <json>` (our recordings and
//! hftbacktest's collector) or bare `<json>` (Bybit's archives, no local time). Files may be plain
//! text, gzip (any number of members: our recorder writes one per flush) or a zip (its first
//! entry, as Bybit ships archives). A gzip file cut short by a kill is read up to its last
//! complete member and reported, not refused.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

/// One input line, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// Local receive time (ns), when the line has one.
    pub local_ns: Option<i64>,
    /// The frame's JSON.
    pub json: &'a str,
}

/// Splits `<ns> <json>` or `<json>`; `None` for a blank line.
pub fn split(line: &str) -> Option<Line<'_>> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if let Some((head, rest)) = line.split_once(' ') {
        if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(ns) = head.parse::<i64>() {
                return Some(Line {
                    local_ns: Some(ns),
                    json: rest.trim_start(),
                });
            }
        }
    }
    Some(Line {
        local_ns: None,
        json: line,
    })
}

/// Counts bytes read from the underlying file (for progress).
pub struct Counted<R> {
    inner: R,
    /// Bytes read so far.
    pub read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path` as a line reader, whatever its compression; `read` counts compressed bytes.
pub fn open(
    path: &Path,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> io::Result<Box<dyn BufRead>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    drop(file);
    let file = Counted {
        inner: File::open(path)?,
        read,
    };
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        return Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file)),
        )));
    }
    if n >= 4 && magic == *b"PK\x03\x04" {
        // Zip needs seeking: read its first entry through a plain file handle.
        let mut zip = zip::ZipArchive::new(File::open(path)?).map_err(io::Error::other)?;
        let mut entry = zip.by_index(0).map_err(io::Error::other)?;
        let mut text = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut text)?;
        let counted = file.read.clone();
        counted.fetch_add(
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        return Ok(Box::new(io::Cursor::new(text)));
    }
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// Whether an error means the compressed stream ended early (a recorder killed mid-write).
pub fn is_truncation(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_a_local_time() {
        assert_eq!(
            split("1758841137168651303 {\"a\":1}\n"),
            Some(Line {
                local_ns: Some(1_758_841_137_168_651_303),
                json: "{\"a\":1}"
            })
        );
        assert_eq!(
            split("{\"topic\":\"orderbook.200.BTCUSDT\"}"),
            Some(Line {
                local_ns: None,
                json: "{\"topic\":\"orderbook.200.BTCUSDT\"}"
            })
        );
        assert_eq!(split("   \n"), None);
    }
}
