//! The embedded store: one SQLite file in WAL mode under the data dir, holding candles, recent
//! trades, the backfill chunks already stored (for resume) and the feed status history.
//!
//! # Durability
//! Every write method runs in one transaction and returns only after it committed, with
//! `synchronous=FULL`: the WAL is fsynced at each commit. So whatever a method reported stored
//! survives a `kill -9` at any moment (that alone would hold with `NORMAL`, since a committed WAL
//! frame is already in the OS cache) and also an OS crash or power loss, which `NORMAL` does not
//! promise. The price is one fsync per call, so callers batch (a backfill chunk, a burst of
//! trades) into one call. SQLite's WAL never leaves a torn file: a transaction cut short is
//! rolled back on the next open.
//!
//! # Idempotence
//! - Candles are keyed by (symbol, category, interval, start). Writing the same candle again
//!   changes nothing; an open candle's newer state replaces the older one. A confirmed candle is
//!   never replaced by an unconfirmed one, and a confirmed REST (`backfill`) candle is never
//!   replaced by a confirmed `live` one (REST is authoritative; a live candle may have missed
//!   trades), while a REST candle does replace a live one.
//! - Trades are keyed by (symbol, category, id); a second copy is ignored.
//! - Decimals are stored as TEXT, exactly as [`rust_decimal::Decimal`] prints them (scale kept).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::protocol::{Category, Side};

pub mod data_dir;

/// The database file name inside the data dir.
pub const DB_FILE: &str = "hft-connector.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS candles (
    symbol     TEXT    NOT NULL,
    category   TEXT    NOT NULL,
    interval   TEXT    NOT NULL,
    start_ms   INTEGER NOT NULL,
    open       TEXT    NOT NULL,
    high       TEXT    NOT NULL,
    low        TEXT    NOT NULL,
    close      TEXT    NOT NULL,
    volume     TEXT    NOT NULL,
    turnover   TEXT    NOT NULL,
    source     TEXT    NOT NULL CHECK (source IN ('backfill', 'live')),
    confirmed  INTEGER NOT NULL CHECK (confirmed IN (0, 1)),
    PRIMARY KEY (symbol, category, interval, start_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trades (
    symbol    TEXT    NOT NULL,
    category  TEXT    NOT NULL,
    id        TEXT    NOT NULL,
    price     TEXT    NOT NULL,
    qty       TEXT    NOT NULL,
    side      TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    ts_ms     INTEGER NOT NULL,
    seq       INTEGER,
    recovered INTEGER NOT NULL CHECK (recovered IN (0, 1)),
    UNIQUE (symbol, category, id)
);
CREATE INDEX IF NOT EXISTS trades_by_time ON trades (symbol, category, ts_ms);
CREATE TABLE IF NOT EXISTS backfill_chunks (
    chunk_id TEXT    PRIMARY KEY,
    candles  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed_status (
    ts_ms    INTEGER NOT NULL,
    symbol   TEXT    NOT NULL,
    category TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    detail   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_status_by_feed ON feed_status (symbol, category, ts_ms);
";

/// What a WAL checkpoint did ([`Store::checkpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// A reader or writer kept it from completing.
    pub busy: bool,
    /// Frames in the WAL.
    pub log_frames: i64,
    /// Frames copied into the database file.
    pub checkpointed_frames: i64,
}

/// A store failure; opening failures name the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data dir cannot be created or is not a directory.
    #[error("data dir {path} is not usable: {source}")]
    DataDir {
        /// The dir.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database cannot be opened, written or set up.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// WAL mode was refused.
    #[error("the database {path} refused WAL mode (journal mode is {mode:?})")]
    NotWal {
        /// The database file.
        path: PathBuf,
        /// The mode SQLite kept.
        mode: String,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored value is not what this module writes.
    #[error("corrupt {table} row: {detail}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A number beyond SQLite's signed 64-bit integers.
    #[error("value {0} does not fit the database")]
    Range(u64),
    /// The store writer thread has stopped.
    #[error("the store writer has stopped")]
    Closed,
}

fn upsert_candles_in(
    tx: &rusqlite::Transaction<'_>,
    candles: &[StoredCandle],
) -> Result<usize, StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO candles (symbol, category, interval, start_ms, open, high, low, close, volume,
                              turnover, source, confirmed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (symbol, category, interval, start_ms) DO UPDATE SET
             open = excluded.open, high = excluded.high, low = excluded.low,
             close = excluded.close, volume = excluded.volume, turnover = excluded.turnover,
             source = excluded.source, confirmed = excluded.confirmed
         WHERE NOT (candles.confirmed = 1 AND excluded.confirmed = 0)
           AND NOT (candles.confirmed = 1 AND candles.source = 'backfill'
                    AND excluded.source = 'live')
           AND (candles.open, candles.high, candles.low, candles.close, candles.volume,
                candles.turnover, candles.source, candles.confirmed)
               IS NOT (excluded.open, excluded.high, excluded.low, excluded.close,
                       excluded.volume, excluded.turnover, excluded.source, excluded.confirmed)",
    )?;
    let mut changed = 0;
    for c in candles {
        changed += stmt.execute(params![
            c.symbol,
            c.category.as_str(),
            c.interval,
            int(c.start_ms)?,
            c.open.to_string(),
            c.high.to_string(),
            c.low.to_string(),
            c.close.to_string(),
            c.volume.to_string(),
            c.turnover.to_string(),
            c.source.as_str(),
            c.confirmed,
        ])?;
    }
    Ok(changed)
}

/// The embedded database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store under `dir`, in WAL mode with `synchronous=FULL`.
    /// Fails at once, naming the path, when the dir cannot be created, is not a directory, or the
    /// database cannot be written there.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        let dir_err = |source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        };
        data_dir::prepare(dir).map_err(dir_err)?;
        let path = dir.join(DB_FILE);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotWal { path, mode });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        // Writing the schema proves the file is writable.
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        Ok(Store { conn, path })
    }

    /// Opens the database file `path` (as [`Store::path`] names it) for reading only: no schema
    /// statements, no writes possible (SQLite refuses them), so an HTTP reader can never change
    /// the store or contend with the writer's schema lock.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let path = path.as_ref().to_path_buf();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        Ok(Store { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Upserts candles in one transaction (see the module rules); returns how many rows changed.
    pub fn upsert_candles(&mut self, candles: &[StoredCandle]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = upsert_candles_in(&tx, candles)?;
        tx.commit()?;
        Ok(n)
    }

    /// Upserts a backfill chunk's candles and records the chunk as done, atomically: after a crash
    /// a chunk is either done with all its candles or not done.
    pub fn store_chunk(
        &mut self,
        chunk_id: &str,
        candles: &[StoredCandle],
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = upsert_candles_in(&tx, candles)?;
        tx.execute(
            "INSERT INTO backfill_chunks (chunk_id, candles) VALUES (?1, ?2)
             ON CONFLICT (chunk_id) DO UPDATE SET candles = excluded.candles",
            params![chunk_id, int(candles.len() as u64)?],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Copies what the WAL holds into the database file, as far as it can without waiting for
    /// readers or writers (`PRAGMA wal_checkpoint(PASSIVE)`): done at close, so a stopped service
    /// leaves a small WAL (SQLite then deletes it when the last connection closes).
    pub fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok(Checkpoint {
                    busy: r.get::<_, i64>(0)? != 0,
                    log_frames: r.get(1)?,
                    checkpointed_frames: r.get(2)?,
                })
            })?)
    }

    /// Ids of the backfill chunks stored.
    pub fn chunks_done(&self) -> Result<HashSet<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT chunk_id FROM backfill_chunks")?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Inserts trades in one transaction, ignoring ids already stored; returns how many were new.
    pub fn insert_trades(&mut self, trades: &[StoredTrade]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO trades (symbol, category, id, price, qty, side, ts_ms, seq, recovered)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (symbol, category, id) DO NOTHING",
            )?;
            for t in trades {
                added += stmt.execute(params![
                    t.symbol,
                    t.category.as_str(),
                    t.id,
                    t.price.to_string(),
                    t.qty.to_string(),
                    match t.side {
                        Side::Buy => "buy",
                        Side::Sell => "sell",
                    },
                    int(t.ts_ms)?,
                    t.seq.map(int).transpose()?,
                    t.recovered,
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Deletes trades beyond `retention` at `now_ms`; returns how many.
    pub fn prune_trades(&mut self, retention: Retention, now_ms: u64) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut deleted = 0;
        if let Some(age) = retention.max_age_ms {
            deleted += tx.execute(
                "DELETE FROM trades WHERE ts_ms < ?1",
                params![int(now_ms.saturating_sub(age))?],
            )?;
        }
        if let Some(keep) = retention.keep_last {
            deleted += tx.execute(
                "DELETE FROM trades WHERE rowid IN (
                     SELECT rowid FROM (
                         SELECT rowid, ROW_NUMBER() OVER (
                             PARTITION BY symbol, category ORDER BY ts_ms DESC, rowid DESC) AS rn
                         FROM trades)
                     WHERE rn > ?1)",
                params![int(keep)?],
            )?;
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// Appends a feed status change.
    pub fn record_status(&mut self, s: &StatusRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO feed_status (ts_ms, symbol, category, status, detail)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                int(s.ts_ms)?,
                s.symbol,
                s.category.as_str(),
                s.status,
                s.detail
            ],
        )?;
        Ok(())
    }

    /// The latest `limit` status changes of a feed, newest first.
    pub fn status_history(
        &self,
        symbol: &str,
        category: Category,
        limit: u64,
    ) -> Result<Vec<StatusRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ts_ms, symbol, category, status, detail FROM feed_status
             WHERE symbol = ?1 AND category = ?2 ORDER BY ts_ms DESC, rowid DESC LIMIT ?3",
        )?;
        collect(
            &mut stmt,
            params![symbol, category.as_str(), int(limit)?],
            |r| {
                Ok(StatusRecord {
                    ts_ms: uint("feed_status", r, 0)?,
                    symbol: r.get(1)?,
                    category: cat("feed_status", r, 2)?,
                    status: r.get(3)?,
                    detail: r.get(4)?,
                })
            },
        )
    }

    /// Candles starting in `[from_ms, to_ms)`, ascending.
    pub fn candles_range(
        &self,
        symbol: &str,
        category: Category,
        interval: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<StoredCandle>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CANDLE_COLUMNS} FROM candles
             WHERE symbol = ?1 AND category = ?2 AND interval = ?3 AND start_ms >= ?4 AND start_ms < ?5
             ORDER BY start_ms"
        ))?;
        collect(
            &mut stmt,
            params![
                symbol,
                category.as_str(),
                interval,
                int(from_ms)?,
                int(to_ms)?
            ],
            candle_row,
        )
    }

    /// The newest candle (only confirmed ones when `confirmed_only`).
    pub fn latest_candle(
        &self,
        symbol: &str,
        category: Category,
        interval: &str,
        confirmed_only: bool,
    ) -> Result<Option<StoredCandle>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CANDLE_COLUMNS} FROM candles
             WHERE symbol = ?1 AND category = ?2 AND interval = ?3 AND (confirmed = 1 OR ?4 = 0)
             ORDER BY start_ms DESC LIMIT 1"
        ))?;
        let mut rows = stmt.query(params![symbol, category.as_str(), interval, confirmed_only])?;
        rows.next()?.map(candle_row).transpose()
    }

    /// Up to `limit` trades at or after `since_ms`, oldest first.
    pub fn trades_since(
        &self,
        symbol: &str,
        category: Category,
        since_ms: u64,
        limit: u64,
    ) -> Result<Vec<StoredTrade>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT symbol, category, id, price, qty, side, ts_ms, seq, recovered FROM trades
             WHERE symbol = ?1 AND category = ?2 AND ts_ms >= ?3
             ORDER BY ts_ms, seq, rowid LIMIT ?4",
        )?;
        collect(
            &mut stmt,
            params![symbol, category.as_str(), int(since_ms)?, int(limit)?],
            trade_row,
        )
    }

    /// `PRAGMA integrity_check`: `"ok"` for a sound file.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }

    /// The journal mode in force (`wal`).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?)
    }

    /// The `synchronous` level in force (2 = FULL).
    pub fn synchronous(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }
}

mod records;
#[cfg(test)]
mod tests;

use records::{candle_row, cat, collect, int, trade_row, uint, CANDLE_COLUMNS};
pub use records::{CandleSource, Retention, StatusRecord, StoredCandle, StoredTrade};
