//! Input files for `convert`: one frame per line, `<local receive ns> <json>` (our recordings and
//! hftbacktest's collector) or bare `<json>` (Bybit's archives, no local time). Files may be plain
//! text, gzip (any number of members: our recorder writes one per flush), zstd (any number of
//! frames: our recorder writes one per flush with `compress = "zstd"`) or a zip (its first entry,
//! as Bybit ships archives, streamed, never read whole). A gzip or zstd file cut short by a kill
//! is read up to its last complete member or frame and reported, not refused.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::{DeflateDecoder, MultiGzDecoder};
use zip::CompressionMethod;

/// The magic number a zstd frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

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
    if n >= 4 && magic == ZSTD_MAGIC {
        // The decoder reads every frame of the file in turn (one per recorder flush).
        let decoder = zstd::stream::read::Decoder::new(file)?;
        return Ok(Box::new(BufReader::with_capacity(1 << 20, decoder)));
    }
    if n >= 4 && magic == *b"PK\x03\x04" {
        return zip_entry(path, file);
    }
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// The first entry of the zip at `path`, streamed from `file`: the central directory gives where
/// its data starts, how long it is and how it is compressed; the data is then decompressed as it
/// is read and its CRC-32 checked at the end, as the zip crate would.
fn zip_entry(path: &Path, mut file: Counted<File>) -> io::Result<Box<dyn BufRead>> {
    let (start, size, length, crc, method) = {
        let mut zip = zip::ZipArchive::new(File::open(path)?).map_err(io::Error::other)?;
        let entry = zip.by_index_raw(0).map_err(io::Error::other)?;
        if entry.encrypted() {
            return Err(io::Error::other("the zip's first entry is encrypted"));
        }
        (
            entry.data_start(),
            entry.compressed_size(),
            entry.size(),
            entry.crc32(),
            entry.compression(),
        )
    };
    file.inner.seek(SeekFrom::Start(start))?;
    file.read
        .fetch_add(start, std::sync::atomic::Ordering::Relaxed);
    let data = BufReader::with_capacity(1 << 20, file.take(size));
    let text: Box<dyn Read> = match method {
        CompressionMethod::Stored => Box::new(data),
        CompressionMethod::Deflated => Box::new(DeflateDecoder::new(data)),
        other => {
            return Err(io::Error::other(format!(
                "the zip's first entry is compressed with {other}; only stored and deflate are read"
            )))
        }
    };
    Ok(Box::new(BufReader::with_capacity(
        1 << 20,
        Checked {
            inner: text,
            hasher: flate2::Crc::new(),
            crc,
            length,
        },
    )))
}

/// Checks a zip entry's CRC-32 and length when its data ends.
struct Checked<R> {
    inner: R,
    hasher: flate2::Crc,
    crc: u32,
    length: u64,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if n == 0 && !buf.is_empty() {
            let (got, len) = (self.hasher.sum(), u64::from(self.hasher.amount()));
            if got != self.crc || (len & 0xffff_ffff) != (self.length & 0xffff_ffff) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "zip entry damaged: CRC-32 {got:08x} over {len} bytes, the archive says {:08x} over {}",
                        self.crc, self.length
                    ),
                ));
            }
        }
        Ok(n)
    }
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
