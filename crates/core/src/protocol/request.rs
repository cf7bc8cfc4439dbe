//! Encoding of client requests (subscribe, unsubscribe, ping) and splitting topics into requests and
//! connections within Bybit's limits (spot: 10 args per request; any: 21,000 args characters per
//! connection).

use serde::Serialize;

use super::topic::{Category, Topic};

/// Most characters the `args` of one public connection may hold, summed over its subscriptions.
pub const MAX_ARGS_CHARS_PER_CONNECTION: usize = 21_000;

/// A request operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `subscribe`
    Subscribe,
    /// `unsubscribe`
    Unsubscribe,
    /// `ping` (the JSON heartbeat; Bybit never sends protocol pings)
    Ping,
}

#[derive(Serialize)]
struct Wire<'a> {
    req_id: &'a str,
    op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a [String]>,
}

/// Encodes a request as Bybit expects it: `{"req_id":"..","op":"..","args":[..]}`.
pub fn encode(op: Op, req_id: &str, args: &[String]) -> String {
    let wire = Wire {
        req_id,
        op,
        args: (op != Op::Ping).then_some(args),
    };
    // Serializing a struct of strings cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Encodes a JSON ping with a request id.
pub fn ping(req_id: &str) -> String {
    encode(Op::Ping, req_id, &[])
}

/// Characters one topic adds to a connection's args (`"topic",`).
fn arg_chars(topic: &str) -> usize {
    topic.len() + 3
}

/// Splits topics over connections (by the 21,000-character limit) and each connection's topics over
/// requests (by the per-request arg limit of the category). A topic longer than the whole limit is
/// an error naming it.
pub fn plan(category: Category, topics: &[Topic]) -> Result<Vec<Vec<Vec<String>>>, String> {
    let per_request = category.max_args_per_request();
    let mut connections: Vec<Vec<Vec<String>>> = Vec::new();
    let mut chars = 0usize;
    for topic in topics {
        let text = topic.to_string();
        let cost = arg_chars(&text);
        if cost > MAX_ARGS_CHARS_PER_CONNECTION {
            return Err(format!("topic {text:?} is longer than Bybit's args limit"));
        }
        if connections.is_empty() || chars + cost > MAX_ARGS_CHARS_PER_CONNECTION {
            connections.push(vec![Vec::new()]);
            chars = 0;
        }
        let conn = connections.last_mut().expect("pushed above");
        if conn.last().is_some_and(|r| r.len() >= per_request) {
            conn.push(Vec::new());
        }
        conn.last_mut().expect("at least one request").push(text);
        chars += cost;
    }
    Ok(connections)
}

/// The requests to subscribe one connection's topics (already within the connection limit).
pub fn subscribe_batches(category: Category, topics: &[String]) -> Vec<Vec<String>> {
    topics
        .chunks(category.max_args_per_request())
        .map(|c| c.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trades(n: usize) -> Vec<Topic> {
        (0..n)
            .map(|i| Topic::Trade {
                symbol: format!("SYM{i}USDT"),
            })
            .collect()
    }

    #[test]
    fn encodes_requests_exactly() {
        assert_eq!(
            encode(Op::Subscribe, "7", &["publicTrade.BTCUSDT".into()]),
            r#"{"req_id":"7","op":"subscribe","args":["publicTrade.BTCUSDT"]}"#
        );
        assert_eq!(
            encode(Op::Unsubscribe, "x", &["orderbook.50.BTCUSDT".into()]),
            r#"{"req_id":"x","op":"unsubscribe","args":["orderbook.50.BTCUSDT"]}"#
        );
        assert_eq!(ping("p1"), r#"{"req_id":"p1","op":"ping"}"#);
    }

    #[test]
    fn spot_requests_hold_at_most_ten_args() {
        let plan = plan(Category::Spot, &trades(26)).unwrap();
        assert_eq!(plan.len(), 1);
        let sizes: Vec<usize> = plan[0].iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![10, 10, 6]);
        assert_eq!(
            subscribe_batches(Category::Spot, &plan[0].concat()).len(),
            3
        );
    }

    #[test]
    fn connections_respect_the_args_character_limit() {
        let topics = trades(2000);
        let plan = plan(Category::Linear, &topics).unwrap();
        assert!(plan.len() > 1);
        let mut total = 0;
        for conn in &plan {
            let chars: usize = conn.iter().flatten().map(|t| arg_chars(t)).sum();
            assert!(chars <= MAX_ARGS_CHARS_PER_CONNECTION);
            total += conn.iter().map(|r| r.len()).sum::<usize>();
        }
        assert_eq!(total, 2000, "every topic is placed exactly once");
    }
}
