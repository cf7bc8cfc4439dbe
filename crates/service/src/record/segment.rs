//! One recording file (a segment): `<ns> <json>` lines buffered in memory and written at each
//! flush, as one complete gzip member or zstd frame when compressed. A gzip file made of members
//! is one valid gzip stream (RFC 1952) and a zstd file of frames one valid zstd stream (RFC 8878),
//! so after a kill -9 every flushed line reads back, and a new segment is opened with
//! `create_new`, never overwriting an earlier one.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::config::Compress;

/// zstd's level for recordings: its fastest regular level (still smaller than gzip's).
const ZSTD_LEVEL: i32 = 1;

/// An open segment.
pub struct Segment {
    path: PathBuf,
    out: Box<dyn Write + Send>,
    compress: Compress,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    buf: Vec<u8>,
    pending: u64,
    /// The period this segment records (e.g. `20261129T08`).
    pub period: String,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("pending", &self.pending)
            .finish()
    }
}

/// What one flush wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Lines written.
    pub lines: u64,
    /// Bytes of text (before compression).
    pub text_bytes: u64,
    /// Bytes written to the file.
    pub file_bytes: u64,
}

/// A flush that failed: the lines it held are lost (counted), the segment stays usable.
#[derive(Debug)]
pub struct FlushError {
    /// Lines lost.
    pub lines: u64,
    /// Why.
    pub error: io::Error,
}

impl Segment {
    /// Opens the first unused `{dir}/{stem}-NNN.{gz|txt}` (creating `dir`).
    pub fn create(dir: &Path, stem: &str, period: &str, compress: Compress) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ext = match compress {
            Compress::Gzip => "gz",
            Compress::Zstd => "zst",
            Compress::None => "txt",
        };
        for n in 0..100_000u32 {
            let path = dir.join(format!("{stem}-{n:03}.{ext}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok(Self::with_writer(path, file, period, compress)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "no free segment number for {stem} in {}",
            dir.display()
        )))
    }

    /// A segment writing to `out` (tests use failing writers).
    pub fn with_writer(
        path: PathBuf,
        out: impl Write + Send + 'static,
        period: &str,
        compress: Compress,
    ) -> Self {
        Segment {
            path,
            out: Box::new(out),
            compress,
            zstd: None,
            buf: Vec::with_capacity(64 * 1024),
            pending: 0,
            period: period.to_string(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes buffered since the last flush.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Buffers one `<recv_ns> <text>` line (line breaks inside `text` become spaces, so one frame
    /// is always one line).
    pub fn push(&mut self, recv_ns: u64, text: &str) {
        let _ = write!(self.buf, "{recv_ns} ");
        let start = self.buf.len();
        self.buf.extend_from_slice(text.trim_end().as_bytes());
        for b in &mut self.buf[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        self.buf.push(b'\n');
        self.pending += 1;
    }

    /// Writes what is buffered (one gzip member when compressed).
    pub fn flush(&mut self) -> Result<Flushed, FlushError> {
        if self.buf.is_empty() {
            return Ok(Flushed::default());
        }
        let lines = std::mem::take(&mut self.pending);
        let text_bytes = self.buf.len() as u64;
        let result = match self.compress {
            Compress::None => self.out.write_all(&self.buf).map(|()| text_bytes),
            Compress::Gzip => {
                let mut gz = GzEncoder::new(
                    Vec::with_capacity(self.buf.len() / 4 + 64),
                    Compression::fast(),
                );
                gz.write_all(&self.buf)
                    .and_then(|()| gz.finish())
                    .and_then(|member| self.out.write_all(&member).map(|()| member.len() as u64))
            }
            Compress::Zstd => {
                // One complete frame per flush (with its content size); the context is reused.
                let frame = match self.zstd.as_mut() {
                    Some(z) => z.compress(&self.buf),
                    None => zstd::bulk::Compressor::new(ZSTD_LEVEL).and_then(|mut z| {
                        let frame = z.compress(&self.buf);
                        self.zstd = Some(z);
                        frame
                    }),
                };
                frame.and_then(|f| self.out.write_all(&f).map(|()| f.len() as u64))
            }
        }
        .and_then(|n| self.out.flush().map(|()| n));
        self.buf.clear();
        match result {
            Ok(file_bytes) => Ok(Flushed {
                lines,
                text_bytes,
                file_bytes,
            }),
            Err(error) => Err(FlushError { lines, error }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    #[test]
    fn each_flush_is_a_gzip_member_and_the_file_reads_back_whole() {
        let dir = std::env::temp_dir().join(format!("hftc-seg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Segment::create(&dir, "BTCUSDT-20261129T08", "20261129T08", Compress::Gzip)
            .expect("create");
        s.push(1, "{\"a\":1}");
        s.push(2, "{\"b\":\n2}\n");
        let first = s.flush().expect("flush");
        assert_eq!(first.lines, 2);
        s.push(3, "{\"c\":3}");
        s.flush().expect("flush");
        let bytes = std::fs::read(s.path()).expect("read");
        // Two members: the gzip magic appears at the start and again after the first member.
        assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        assert_eq!(&bytes[first.file_bytes as usize..][..2], &[0x1f, 0x8b]);
        let mut text = String::new();
        MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .expect("valid gzip");
        assert_eq!(text, "1 {\"a\":1}\n2 {\"b\": 2}\n3 {\"c\":3}\n");
        // A restart never overwrites: the next segment gets the next number.
        let again = Segment::create(&dir, "BTCUSDT-20261129T08", "20261129T08", Compress::Gzip)
            .expect("create");
        assert!(again.path().ends_with("BTCUSDT-20261129T08-001.gz"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_flush_is_a_zstd_frame_and_a_file_cut_after_a_frame_decodes() {
        let dir = std::env::temp_dir().join(format!("hftc-segz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Segment::create(&dir, "BTCUSDT-20261129T08", "20261129T08", Compress::Zstd)
            .expect("create");
        assert!(s.path().ends_with("BTCUSDT-20261129T08-000.zst"));
        s.push(1, "{\"a\":1}");
        let first = s.flush().expect("flush");
        s.push(2, "{\"b\":2}");
        s.push(3, "{\"c\":3}");
        let second = s.flush().expect("flush");
        assert_eq!((first.lines, second.lines), (1, 2));
        let bytes = std::fs::read(s.path()).expect("read");
        assert_eq!(bytes.len() as u64, first.file_bytes + second.file_bytes);
        // Two frames: the zstd magic at the start and again after the first frame.
        let magic = [0x28, 0xb5, 0x2f, 0xfd];
        assert_eq!(&bytes[..4], &magic);
        assert_eq!(&bytes[first.file_bytes as usize..][..4], &magic);
        let decode = |b: &[u8]| {
            let mut text = String::new();
            zstd::stream::read::Decoder::new(b)
                .and_then(|mut d| d.read_to_string(&mut text))
                .map(|_| text)
        };
        assert_eq!(
            decode(&bytes).expect("valid zstd"),
            "1 {\"a\":1}\n2 {\"b\":2}\n3 {\"c\":3}\n"
        );
        // What a kill -9 between two flushes leaves: the frames written so far, whole.
        assert_eq!(
            decode(&bytes[..first.file_bytes as usize]).expect("valid zstd"),
            "1 {\"a\":1}\n"
        );
        // A frame cut in the middle (a kill inside a write) is an error, not silent garbage.
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_loses_only_the_lines_of_that_flush_and_the_segment_goes_on() {
        let mut s = Segment::with_writer("x".into(), Full, "p", Compress::None);
        s.push(1, "{}");
        s.push(2, "{}");
        let e = s.flush().expect_err("disk full");
        assert_eq!(e.lines, 2);
        assert_eq!(e.error.raw_os_error(), Some(28));
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.flush().expect("nothing to write"), Flushed::default());
    }
}
