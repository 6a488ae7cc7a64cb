//! `POST /v1/leases/{id}/exec/stream`: an exec whose output comes as it is written, one JSON
//! object per line (NDJSON), then its end.
//!
//! Why NDJSON and not SSE: the request is a POST with a JSON body (an `EventSource` cannot
//! send one), there is one consumer, and a line of JSON is read by any client (`curl -N`,
//! httpx's `iter_lines`, a `for line in …` loop) without an event-stream parser; bytes stay
//! exact with `"output": "base64"`.
//!
//! Lines: `{"stdout": TEXT}` or `{"stderr": TEXT}` (`stdout_b64`/`stderr_b64` in base64 mode)
//! for each chunk as it comes, then `{"exit_code": N|null, "signal": N|null, "timed_out":
//! BOOL, "lost": BOOL, "truncated": false, "duration_ms": N}` (streamed output is never cut).
//! Text mode never splits a UTF-8 character across two lines.
//! Stdin is the request's own (`stdin`/`stdin_b64`), closed after; for input that streams in,
//! use the WebSocket route (`terminal.rs`).

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::json;
use warmpool_core::{Backend, ExecEvent, LeaseSession};

use crate::code::route_errors;
use crate::core_errors::LEASE_CODES;
use crate::exec::{Encoding, ExecBody, exec_request};
use crate::{ApiError, Shared};

/// A UTF-8 decoder that keeps an incomplete character for the next chunk.
#[derive(Default)]
pub(crate) struct Utf8Carry(Vec<u8>);

impl Utf8Carry {
    /// The text of `chunk` after what was carried; invalid bytes are replaced, an incomplete
    /// last character waits.
    pub fn push(&mut self, chunk: &[u8]) -> String {
        self.0.extend_from_slice(chunk);
        let valid = match std::str::from_utf8(&self.0) {
            Ok(_) => self.0.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.0.len(),
        };
        let rest = self.0.split_off(valid);
        let text = String::from_utf8_lossy(&self.0).into_owned();
        self.0 = rest;
        text
    }

    /// What is left at the end, replaced where it is not UTF-8.
    pub fn finish(&mut self) -> String {
        let t = String::from_utf8_lossy(&self.0).into_owned();
        self.0.clear();
        t
    }
}

route_errors!(
    /// What an operation on the lease's container answers, before the first line.
    StreamErrors = LEASE_CODES
);

/// `POST /v1/leases/{id}/exec/stream`.
#[utoipa::path(post, path = "/v1/leases/{id}/exec/stream", tag = "leases", operation_id = "exec_stream",
    params(("id" = String, Path, description = "The lease id")),
    request_body = ExecBody,
    responses(
        (status = 200, description = "NDJSON: `{\"stdout\"|\"stderr\"|\"stdout_b64\"|\"stderr_b64\": …}` per chunk as it comes, then `{\"exit_code\", \"signal\", \"timed_out\", \"lost\", \"truncated\", \"duration_ms\"}` (`truncated` always false: streamed output is never cut)", content_type = "application/x-ndjson", body = String),
        StreamErrors,
    ))]
pub async fn exec_stream<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let b: ExecBody = crate::body::object(&headers, &raw)?;
    let (req, enc) = exec_request(b, crate::exec::MAX_EXEC)?;
    let started = Instant::now();
    let session = s.manager.exec_session(&id, req).await?;
    let lines = futures_util::stream::unfold(
        (Some(session), Utf8Carry::default(), Utf8Carry::default()),
        move |(session, mut out, mut err)| async move {
            let mut session: LeaseSession = session?;
            let line = match session.session.events.recv().await {
                Some(ExecEvent::Stdout(d)) => chunk("stdout", &d, enc, &mut out),
                Some(ExecEvent::Stderr(d)) => chunk("stderr", &d, enc, &mut err),
                Some(ExecEvent::Exit(st)) => {
                    let mut tail = String::new();
                    for (name, carry) in [("stdout", &mut out), ("stderr", &mut err)] {
                        let t = carry.finish();
                        if !t.is_empty() {
                            tail.push_str(&json!({ name: t }).to_string());
                            tail.push('\n');
                        }
                    }
                    tail.push_str(
                        &json!({
                            "exit_code": st.exit_code,
                            "signal": st.signal,
                            "timed_out": st.timed_out,
                            "lost": st.lost,
                            // As the buffered exec's answer; streamed output is never cut.
                            "truncated": false,
                            "duration_ms": started.elapsed().as_millis() as u64,
                        })
                        .to_string(),
                    );
                    tail.push('\n');
                    return Some((Ok::<_, std::io::Error>(Bytes::from(tail)), (None, out, err)));
                }
                None => return None,
            };
            Some((Ok(Bytes::from(line)), (Some(session), out, err)))
        },
    )
    .filter(|r| std::future::ready(!matches!(r, Ok(b) if b.is_empty())));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

fn chunk(name: &str, d: &[u8], enc: Encoding, carry: &mut Utf8Carry) -> String {
    let v = match enc {
        Encoding::Text => {
            let t = carry.push(d);
            if t.is_empty() {
                return String::new();
            }
            json!({ name: t })
        }
        Encoding::Base64 => {
            json!({ format!("{name}_b64"): base64::engine::general_purpose::STANDARD.encode(d) })
        }
    };
    format!("{v}\n")
}

#[cfg(test)]
mod tests {
    use super::Utf8Carry;

    #[test]
    fn a_character_split_across_chunks_waits_for_its_end() {
        let s = "héllo".as_bytes();
        let mut c = Utf8Carry::default();
        assert_eq!(c.push(&s[..2]), "h");
        assert_eq!(c.push(&s[2..]), "éllo");
        assert_eq!(c.push(b"\xff ok"), "\u{fffd} ok");
        assert_eq!(c.push(b"\xc3"), "");
        assert_eq!(c.finish(), "\u{fffd}");
    }
}
