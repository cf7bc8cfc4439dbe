//! Client requests on a public connection: `ping`, `subscribe`, `unsubscribe`, anything else, and
//! text that is not JSON; each answered in the category's exact shape.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::core::TopicError;
use super::encode;
use super::hub::Conn;
use super::server::{wall_ms, Shared};
use crate::protocol::Category;

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    op: Option<Value>,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    req_id: Option<Value>,
}

fn text_of(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// Handles one text message; returns whether it was a ping (which keeps the connection alive).
pub fn handle(shared: &Shared, conn: &Arc<Conn>, text: &str) -> bool {
    let req: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(_) => {
            // Bybit's own decoder message; the socket stays open.
            let shown: String = text.chars().take(32).collect();
            let msg = format!(
                "Failed to decode incoming data:readObjectStart: expect {{ or n, but found {}, error found in #1 byte of ...|{shown}|..., bigger context ...|{shown}|...",
                text.chars().next().unwrap_or(' ')
            );
            conn.reply(encode::ack(
                conn.category,
                &conn.conn_id,
                None,
                "",
                false,
                &msg,
            ));
            return false;
        }
    };
    let req_id = text_of(&req.req_id);
    let op = text_of(&req.op).unwrap_or_default();
    match op.as_str() {
        "ping" => {
            conn.reply(encode::pong(
                conn.category,
                &conn.conn_id,
                req_id.as_deref(),
            ));
            true
        }
        "subscribe" | "unsubscribe" => {
            let args: Vec<String> = match &req.args {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if op == "subscribe" {
                subscribe(shared, conn, req_id.as_deref(), &args);
            } else {
                unsubscribe(shared, conn, req_id.as_deref(), &args);
            }
            false
        }
        _ => {
            conn.reply(encode::ack(
                conn.category,
                &conn.conn_id,
                req_id.as_deref(),
                &op,
                false,
                "error:invalid op",
            ));
            false
        }
    }
}

fn ok_msg(category: Category, op: &str) -> &str {
    match category {
        Category::Spot => op,
        _ => "",
    }
}

fn subscribe(shared: &Shared, conn: &Arc<Conn>, req_id: Option<&str>, args: &[String]) {
    let category = conn.category;
    let ack = |success: bool, msg: &str| {
        encode::ack(category, &conn.conn_id, req_id, "subscribe", success, msg)
    };
    if args.is_empty() {
        conn.reply(ack(false, "error:args is empty"));
        return;
    }
    if args.len() > category.max_args_per_request() && category == Category::Spot {
        // Spot refuses the whole request; nothing is subscribed.
        conn.reply(ack(false, "args size >10"));
        return;
    }
    let now = shared.mono_ms();
    if let Some(t) =
        shared.with_global(|g| args.iter().find(|t| g.rejects(now, category, t)).cloned())
    {
        conn.reply(ack(false, &format!("error:subscribe rejected,topic:{t}")));
        return;
    }
    let mut core = shared.lock_core();
    // Validate everything first so the ack precedes the snapshots, as on Bybit.
    let mut accepted = Vec::new();
    let mut refusal: Option<String> = None;
    for t in args {
        match core.resolve(category, t) {
            None => {
                refusal.get_or_insert_with(|| format!("error:handler not found,topic:{t}"));
            }
            Some(key) if core.hub.is_subscribed(&key, conn.id) || accepted.contains(&key) => {
                refusal.get_or_insert_with(|| format!("error:already subscribed,topic:{t}"));
            }
            Some(key) => accepted.push(key),
        }
    }
    match &refusal {
        Some(msg) => conn.reply(ack(false, msg)),
        None => conn.reply(ack(true, ok_msg(category, "subscribe"))),
    }
    let now_ms = wall_ms();
    for key in accepted {
        match core.subscribe(conn, key, now_ms) {
            Ok(()) | Err(TopicError::Already) | Err(TopicError::NotFound) => {}
        }
    }
}

fn unsubscribe(shared: &Shared, conn: &Arc<Conn>, req_id: Option<&str>, args: &[String]) {
    let category = conn.category;
    let mut core = shared.lock_core();
    let mut refusal: Option<String> = None;
    for t in args {
        match core.resolve(category, t) {
            None => {
                refusal.get_or_insert_with(|| format!("error:handler not found,topic:{t}"));
            }
            Some(key) => {
                if !core.hub.unsubscribe(&key, conn.id) {
                    refusal.get_or_insert_with(|| format!("error:not subscribed,topic:{t}"));
                }
            }
        }
    }
    let (success, msg) = match &refusal {
        Some(m) => (false, m.as_str()),
        None => (true, ok_msg(category, "unsubscribe")),
    };
    conn.reply(encode::ack(
        category,
        &conn.conn_id,
        req_id,
        "unsubscribe",
        success,
        msg,
    ));
}
