//! Exchange operations outside the market step: level-1 heartbeat repeats, kline pushes, and the
//! `gap` and `restart` faults on book topics.

use super::core::{top_of, Core, DEPTHS};
use super::encode;
use super::hub::{TopicKey, TopicKind};
use super::ladder::BookSide;
use super::tape::{self, Bar};
use crate::protocol::topic::KLINE_INTERVALS;

impl Core {
    /// Repeats every level-1 snapshot unchanged for `repeat_ms` (same `u`).
    pub fn repeat_level1(&mut self, now_ms: u64, repeat_ms: u64) -> u64 {
        let mut frames = 0;
        for i in 0..self.insts.len() {
            if now_ms.saturating_sub(self.insts[i].l1_sent_ms) >= repeat_ms {
                frames += self.publish_level1(i, now_ms, false);
            }
        }
        frames
    }

    /// Pushes the current candle of every subscribed kline topic (and the closed one on rollover).
    pub fn push_klines(&mut self, now_ms: u64) -> u64 {
        let keys: Vec<TopicKey> = self
            .hub
            .topics()
            .filter(|k| matches!(k.1, TopicKind::Kline(_)))
            .copied()
            .collect();
        self.kline_sent.retain(|k, _| keys.contains(k));
        let mut frames = 0;
        for key in keys {
            let TopicKind::Kline(idx) = key.1 else {
                continue;
            };
            let interval = KLINE_INTERVALS[usize::from(idx)];
            let st = &mut self.insts[usize::from(key.0)];
            let last = st.last_trade.unwrap_or(st.inst.start_ticks);
            st.tape.advance_to(now_ms, last);
            let cur = tape::bucket_start(interval, now_ms);
            let mut bars: Vec<(Bar, bool)> = Vec::new();
            if let Some(&prev) = self.kline_sent.get(&key) {
                if prev < cur {
                    bars.extend(
                        st.tape
                            .bars(interval, prev, prev)
                            .into_iter()
                            .map(|b| (b, true)),
                    );
                }
            }
            bars.extend(
                st.tape
                    .bars(interval, cur, cur)
                    .into_iter()
                    .map(|b| (b, false)),
            );
            self.kline_sent.insert(key, cur);
            if !bars.is_empty() {
                let text = encode::kline(&st.inst, interval, now_ms, &bars);
                self.hub.publish(&key, text);
                frames += 1;
            }
        }
        frames
    }

    /// The `gap` fault: the next update of every book topic of `ids` skips one `u`.
    pub fn gap(&mut self, ids: &[u16]) -> usize {
        let mut n = 0;
        for &id in ids {
            for t in self.insts[usize::from(id)].topics.iter_mut().skip(1) {
                t.skip_next = true;
                n += 1;
            }
        }
        n
    }

    /// The `restart` fault: every book topic of `ids` starts over with a `u = 1` snapshot.
    pub fn restart(&mut self, ids: &[u16], now_ms: u64) -> usize {
        let mut n = 0;
        for &id in ids {
            let i = usize::from(id);
            for (k, depth) in DEPTHS.iter().enumerate() {
                let st = &mut self.insts[i];
                st.topics[k].u = 1;
                st.topics[k].skip_next = false;
                let d = usize::from(*depth);
                let bids =
                    st.ladder.side(BookSide::Bid)[..d.min(st.ladder.len(BookSide::Bid))].to_vec();
                let asks =
                    st.ladder.side(BookSide::Ask)[..d.min(st.ladder.len(BookSide::Ask))].to_vec();
                if k == 0 {
                    st.l1_top = top_of(&st.ladder);
                    st.l1_sent_ms = now_ms;
                }
                self.publish_book(i, k, true, false, (&bids, &asks), now_ms);
                n += 1;
            }
        }
        n
    }
}
