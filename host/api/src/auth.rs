//! Bearer-token auth for `/v1`, compared in constant time so the answer's timing reveals
//! nothing about how much of a guess was right.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use warmpool_core::Backend;

use crate::code::Code;
use crate::{ApiError, Shared};

/// Middleware on `/v1`: when a token is configured, answer 401 unless the request
/// carries `Authorization: Bearer <token>`.
pub async fn require_token<B: Backend>(
    State(s): State<Shared<B>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(expected) = &s.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match given {
        Some(t) if bool::from(t.as_bytes().ct_eq(expected.as_bytes())) => next.run(req).await,
        Some(_) => ApiError::new(Code::Unauthorized, "wrong bearer token").into_response(),
        None => {
            let mut r = ApiError::new(
                Code::Unauthorized,
                "missing `Authorization: Bearer <token>`",
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

/// The token of an `Authorization` value: the scheme is case-insensitive (RFC 9110 §11.1) and
/// may be followed by more than one space.
fn bearer(v: &str) -> Option<&str> {
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
