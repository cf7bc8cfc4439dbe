//! Worker stderr capture: every line becomes a `bybit_connector_subprocess_stderr` log event
//! (`pid`, `line`, and `worker_event` for the worker's own JSON lines) at the level the worker
//! logged it, so no library error or panic message is lost.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Longest stderr line kept whole; longer ones are split.
const MAX_STDERR_LINE: u64 = 64 * 1024;

/// Logs each stderr line of worker `pid` until its stderr closes.
pub(crate) async fn pump_stderr(pid: u32, stderr: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_STDERR_LINE)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let parsed: Option<serde_json::Value> = serde_json::from_str(line).ok();
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (level, worker_event) = (field("level"), field("event"));
        match level.as_str() {
            "ERROR" => {
                tracing::error!(event = "bybit_connector_subprocess_stderr", pid, worker_event = %worker_event, line = %line)
            }
            "WARN" => {
                tracing::warn!(event = "bybit_connector_subprocess_stderr", pid, worker_event = %worker_event, line = %line)
            }
            "INFO" | "DEBUG" | "TRACE" => {
                tracing::info!(event = "bybit_connector_subprocess_stderr", pid, worker_event = %worker_event, line = %line)
            }
            // Not a log line of ours: a panic message, a crash report. Never lose it.
            _ => tracing::error!(event = "bybit_connector_subprocess_stderr", pid, line = %line),
        }
    }
}
