//! Reading the daemon's Server-Sent Events stream in tests.

use std::time::Duration;

use serde_json::Value;

/// Read SSE frames until `want` kinds were all seen (or the deadline), returning the records.
pub async fn collect_events(mut resp: reqwest::Response, want: &[&str]) -> Vec<Value> {
    let mut buf = String::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !want
        .iter()
        .all(|w| seen.iter().any(|e: &Value| e["kind"] == *w))
    {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("events timed out")
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                seen.push(serde_json::from_str(data).unwrap());
            }
        }
    }
    seen
}
