//! `hft-connector decode`: the normalized schema, bad-line handling and exit status, end to end.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

fn data(name: &str) -> String {
    format!("{}/testdata/bybit/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn decode(args: &[&str], stdin: Option<&str>) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let events = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap(),
        events,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn trade_schema_matches_the_contract() {
    let (code, ev, err) = decode(&[&data("linear-capture.txt")], None);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        ev[1],
        json!({"type":"trade","symbol":"BTCUSDT","id":"2a74ac78-691c-5b54-9dbe-5aafe8364627",
               "price":"109378.90","qty":"0.020","side":"buy","ts_ms":1758841135823u64,
               "seq":457514743450u64,"block":false,"recv_ns":1758841138293664629u64})
    );
}

#[test]
fn spot_ob50_snapshot_then_delta_prints_the_exact_book() {
    let (code, ev, _) = decode(&[&data("spot-ob50-sequence.jsonl"), "--top", "3"], None);
    assert_eq!(code, 0);
    assert_eq!(ev.len(), 2);
    let s = &ev[0];
    assert_eq!(s["type"], "book");
    assert_eq!(s["kind"], "snapshot");
    assert_eq!(
        (s["u"].as_u64(), s["seq"].as_u64(), s["ts_ms"].as_u64()),
        (Some(2876700), Some(47474967795), Some(1731035685326))
    );
    assert_eq!(s["best_bid"], json!(["75848.74", "0.067669"]));
    assert_eq!(s["best_ask"], json!(["75848.75", "0.747137"]));
    assert_eq!(s["levels"], json!([50, 50]));
    assert_eq!(
        s["bids"].as_array().unwrap().len(),
        50,
        "levels as received"
    );
    let d = &ev[1];
    assert_eq!(
        (d["kind"].as_str(), d["u"].as_u64()),
        (Some("delta"), Some(2876701))
    );
    assert_eq!(
        d["bids"],
        json!([["75848.62", "0.014895"], ["75837.13", "0"]])
    );
    assert_eq!(d["levels"], json!([50, 50]));
    assert_eq!(
        d["top"],
        json!({"bids":[["75848.74","0.067669"],["75848.63","0.004772"],["75848.62","0.014895"]],
               "asks":[["75848.75","0.747137"],["75848.89","0.088149"],["75848.9","0.1"]]})
    );
}

#[test]
fn bad_lines_are_reported_with_their_number_and_skipped() {
    let input = concat!(
        r#"{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}"#,
        "\n",
        "not json\n",
        "\n",
        r#"{"topic":"tickers.BTCUSDT","ts":1,"type":"snapshot","data":{}}"#,
        "\n",
        r#"{"topic":"publicTrade.BTCUSDT","ts":1,"type":"snapshot","data":[{"i":"1","T":4,"p":"x","v":"2","S":"Buy","s":"BTCUSDT"}]}"#,
        "\n",
        r#"{"success":false,"ret_msg":"error:handler not found,topic:orderbook.500.BTCUSDT","conn_id":"c","req_id":"1","op":"subscribe"}"#,
        "\n",
    );
    let (code, ev, err) = decode(&["-"], Some(input));
    assert_eq!(code, 1, "some line failed");
    let errs: Vec<&str> = err.lines().collect();
    assert_eq!(errs.len(), 2, "{err}");
    assert!(
        errs[0].starts_with("line 2: malformed frame") && errs[0].contains("not json"),
        "{err}"
    );
    assert!(
        errs[1].starts_with("line 5: ") && errs[1].contains("\"p\":\"x\""),
        "{err}"
    );
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["pong", "unknown", "ack"], "processing went on");
    assert_eq!(ev[2]["fail_topics"], json!(["orderbook.500.BTCUSDT"]));
    assert_eq!(
        ev[1]["raw"],
        r#"{"topic":"tickers.BTCUSDT","ts":1,"type":"snapshot","data":{}}"#
    );
}

#[test]
fn gaps_resets_stale_and_crossed_books_are_events() {
    let f = |kind: &str, u: u64, b: &str, a: &str| {
        format!(
            r#"{{"topic":"orderbook.50.ETHUSDT","type":"{kind}","ts":{u},"data":{{"s":"ETHUSDT","b":{b},"a":{a},"u":{u},"seq":{u}}}}}"#
        )
    };
    let input = [
        f("snapshot", 10, r#"[["100","1"]]"#, r#"[["101","1"]]"#),
        f("delta", 10, "[]", "[]"),
        f("delta", 12, "[]", "[]"),
        f("snapshot", 20, r#"[["100","1"]]"#, r#"[["101","1"]]"#),
        f("snapshot", 1, r#"[["100","1"]]"#, r#"[["101","1"]]"#),
        f("delta", 2, r#"[["102","1"]]"#, "[]"),
    ]
    .join("\n");
    let (code, ev, _) = decode(&[], Some(&input));
    assert_eq!(code, 0);
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "book",
            "book_stale",
            "book_gap",
            "book",
            "book_reset",
            "book",
            // The crossing delta is reported, never published as a book (the live feed agrees).
            "book_crossed"
        ]
    );
    assert_eq!(
        ev[2],
        json!({"type":"book_gap","symbol":"ETHUSDT","depth":50,"expected_u":11,"got_u":12})
    );
    assert_eq!(ev[4]["previous_u"], 20);
    assert_eq!(ev[6]["best_bid"], "102");
    assert_eq!(ev[6]["u"], 2);
}

#[test]
fn missing_file_is_a_clear_error() {
    let (code, _, err) = decode(&["/nonexistent/capture.txt"], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot open /nonexistent/capture.txt"),
        "{err}"
    );
}
