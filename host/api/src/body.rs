//! Request bodies: one JSON object, read in one pass from the bytes; and [`schema`], for what
//! the derive cannot say of a body's fields.
//!
//! One reader for every JSON route, so each gets the same answers: 415 when the body does not
//! say it is JSON (a web page may POST `text/plain` to any origin without a preflight; every
//! POST is also checked before its handler, by [`crate::web::require_json_post`]), 400
//! when it is not an object (serde would read a struct from an array, `["busybox", 60]`,
//! which no client means and the OpenAPI document does not allow), and 400 naming the field
//! at fault otherwise. Too large a body is refused before this by the route's body limit (413).

use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::ApiError;
use crate::code::Code;

/// The body as `T`, from a JSON object.
pub fn object<T: DeserializeOwned>(headers: &HeaderMap, raw: &[u8]) -> Result<T, ApiError> {
    if !says_json(headers) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "expected a body with `Content-Type: application/json`",
        ));
    }
    let kind = match raw.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => None,
        None => Some("empty"),
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b'n') => Some("null"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        Some(_) => Some("not JSON"),
    };
    if let Some(kind) = kind {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object, not {kind}"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    let t = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // The path of the field at fault leads the message.
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("bad body: {inner}"))
        } else {
            ApiError::bad_request(format!("bad body: {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("bad body: {e}")))?;
    Ok(t)
}

/// The body as `T`, or `T::default()` when it is empty (no bytes at all). `null` is refused as
/// any other non-object is: the OpenAPI document says the body is an object, and a client that
/// sends `null` has built its body wrong. So is a body of only whitespace, which is not JSON
/// (schemathesis sent `\r`). (A POST without a JSON content type never gets here:
/// [`crate::web::require_json_post`] refused it.)
pub fn object_or_default<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<T, ApiError> {
    if raw.is_empty() {
        return Ok(T::default());
    }
    object(headers, raw)
}

/// `application/json`, or a `+json` type, as axum's own `Json` accepts.
pub(crate) fn says_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body field's schema written as JSON, for what the derive cannot say (`propertyNames`,
/// `prefixItems`). Every such schema is a constant of this crate; the OpenAPI unit tests build
/// the whole document, so one that does not parse fails them.
pub(crate) fn schema(v: serde_json::Value) -> utoipa::openapi::Schema {
    serde_json::from_value(v).expect("a schema constant of the API crate")
}
