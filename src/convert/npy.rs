//! The `.npz` hftbacktest loads: a zip (deflate, like `np.savez_compressed`) holding `data.npy`,
//! an NPY 1.0 array of `event_dtype` rows: `ev` u8, `exch_ts` i8, `local_ts` i8, `px` f8, `qty` f8,
//! `order_id` u8, `ival` i8, `fval` f8, little-endian, 64 bytes a row. The header is byte for
//! byte the one numpy writes for that dtype.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::hftbacktest::Event;

/// Bytes per row.
pub const ROW: usize = 64;

/// The NPY header (magic, version, length, dict padded to 64 bytes) for `rows` events.
pub fn header(rows: usize) -> Vec<u8> {
    let dict = format!(
        "{{'descr': [('ev', '<u8'), ('exch_ts', '<i8'), ('local_ts', '<i8'), ('px', '<f8'), \
         ('qty', '<f8'), ('order_id', '<u8'), ('ival', '<i8'), ('fval', '<f8')], \
         'fortran_order': False, 'shape': ({rows},), }}"
    );
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// Appends one row's bytes.
pub fn put(out: &mut Vec<u8>, e: &Event) {
    out.extend_from_slice(&e.ev.to_le_bytes());
    out.extend_from_slice(&e.exch_ts.to_le_bytes());
    out.extend_from_slice(&e.local_ts.to_le_bytes());
    out.extend_from_slice(&e.px.to_le_bytes());
    out.extend_from_slice(&e.qty.to_le_bytes());
    out.extend_from_slice(&e.order_id.to_le_bytes());
    out.extend_from_slice(&e.ival.to_le_bytes());
    out.extend_from_slice(&e.fval.to_le_bytes());
}

/// One row's bytes.
pub fn encode(e: &Event) -> [u8; ROW] {
    let mut b = [0u8; ROW];
    let fields = [
        e.ev.to_le_bytes(),
        e.exch_ts.to_le_bytes(),
        e.local_ts.to_le_bytes(),
        e.px.to_le_bytes(),
        e.qty.to_le_bytes(),
        e.order_id.to_le_bytes(),
        e.ival.to_le_bytes(),
        e.fval.to_le_bytes(),
    ];
    for (chunk, f) in b.chunks_exact_mut(8).zip(fields) {
        chunk.copy_from_slice(&f);
    }
    b
}

/// The row [`encode`] wrote.
pub fn decode(b: &[u8; ROW]) -> Event {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        w
    };
    Event {
        ev: u64::from_le_bytes(word(0)),
        exch_ts: i64::from_le_bytes(word(1)),
        local_ts: i64::from_le_bytes(word(2)),
        px: f64::from_le_bytes(word(3)),
        qty: f64::from_le_bytes(word(4)),
        order_id: u64::from_le_bytes(word(5)),
        ival: i64::from_le_bytes(word(6)),
        fval: f64::from_le_bytes(word(7)),
    }
}

/// Writes an `.npz` of `rows` events, produced by `fill` (which must emit exactly `rows`).
pub fn write_npz(
    path: &Path,
    rows: usize,
    fill: impl FnOnce(&mut dyn FnMut(Event)),
) -> io::Result<()> {
    let file = File::create(path)?;
    let mut zip = ZipWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(rows.saturating_mul(ROW) >= u32::MAX as usize / 2);
    zip.start_file("data.npy", opts).map_err(io::Error::other)?;
    zip.write_all(&header(rows))?;
    let mut buf = Vec::with_capacity(ROW * 16_384);
    let mut written = 0usize;
    let mut error: Option<io::Error> = None;
    fill(&mut |e: Event| {
        if error.is_some() {
            return;
        }
        put(&mut buf, &e);
        written += 1;
        if buf.len() >= ROW * 16_384 {
            if let Err(e) = zip.write_all(&buf) {
                error = Some(e);
            }
            buf.clear();
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    zip.write_all(&buf)?;
    if written != rows {
        return Err(io::Error::other(format!(
            "internal error: announced {rows} rows, wrote {written}"
        )));
    }
    let mut inner = zip.finish().map_err(io::Error::other)?;
    inner.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_numpys_for_event_dtype() {
        // What `np.save` writes for `np.zeros(3, hftbacktest.types.event_dtype)` (numpy 2.2).
        let h = header(3);
        assert_eq!(h.len(), 256);
        assert_eq!(&h[..10], b"\x93NUMPY\x01\x00\xf6\x00");
        let dict = std::str::from_utf8(&h[10..]).expect("ascii");
        assert!(dict.starts_with("{'descr': [('ev', '<u8'), ('exch_ts', '<i8'), ('local_ts', '<i8'), ('px', '<f8'), ('qty', '<f8'), ('order_id', '<u8'), ('ival', '<i8'), ('fval', '<f8')], 'fortran_order': False, 'shape': (3,), }"));
        assert!(dict.ends_with(" \n"));
        let mut row = Vec::new();
        put(
            &mut row,
            &Event {
                ev: 1,
                px: 1.5,
                ..Event::default()
            },
        );
        assert_eq!(row.len(), ROW);
        assert_eq!(&row[24..32], &1.5f64.to_le_bytes());
        let e = Event {
            ev: 7,
            exch_ts: -2,
            local_ts: 3,
            px: 1.25,
            qty: -0.5,
            order_id: 9,
            ival: -11,
            fval: f64::MIN_POSITIVE,
        };
        let mut row = Vec::new();
        put(&mut row, &e);
        assert_eq!(&encode(&e)[..], &row[..]);
        assert_eq!(decode(&encode(&e)), e);
    }
}
