//! Who may call what, on every `/v1` route. Four middlewares, each on the routes it guards
//! (see [`crate::router`]), so no handler can forget a check:
//!
//! - [`identify`], on every `/v1` route: the bearer token makes the request a [`Caller`]: a
//!   tenant (its token's hash compared against every tenant's in constant time), a lease
//!   token, or, when no tenant is configured, the open API. No token or a wrong one: 401.
//! - [`lease_scope`], on the routes of one lease (`/v1/leases/{id}` and below): a tenant
//!   reaches only its own leases, a lease token only its lease. Any other lease answers the
//!   same 404 as a lease that does not exist, so IDs guessed or seen elsewhere reveal nothing.
//! - [`admin_only`]: reload, scale, warm-up, engines, plugins. 403 for anyone but an admin.
//! - [`no_lease_token`]: the tenant routes (acquire, list, pools, events, tenants,
//!   history) are closed to a lease token, 403.

use axum::extract::{RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use warmpool_core::{Backend, LeaseError};

use crate::code::Code;
use crate::tenancy::caller::Caller;
use crate::{ApiError, Shared};

/// Middleware on `/v1`: find who is calling, or answer 401.
pub async fn identify<B: Backend>(
    State(s): State<Shared<B>>,
    mut req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let caller = match given {
        Some(token) => match caller_of(&s, token) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        },
        None if s.tenants.enabled() => return missing_token(),
        None => Caller::Open,
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn caller_of<B: Backend>(s: &Shared<B>, token: &str) -> Result<Caller, ApiError> {
    if let Some(t) = s.tenants.find(token) {
        return Ok(Caller::Tenant(t));
    }
    if let Some(id) = s.lease_keys.verify(token) {
        // A lease token dies with its lease. Before a restart's reconcile the lease may
        // still come back: its own routes answer that.
        return match s.manager.lease_tenant(id) {
            Err(LeaseError::UnknownLease(_)) => Err(ApiError::new(
                Code::Unauthorized,
                "the lease of this lease token has ended",
            )),
            _ => Ok(Caller::Lease(id.to_string())),
        };
    }
    if s.tenants.enabled() {
        Err(ApiError::new(Code::Unauthorized, "wrong bearer token"))
    } else {
        // The open API ignores a token it does not know, as it did before tenants.
        Ok(Caller::Open)
    }
}

fn missing_token() -> Response {
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

/// Whether `headers` carry an admin tenant's token (outside `/v1`, where nothing requires
/// one: `/metrics` shows each tenant's use to an admin alone). An open daemon has no tenants
/// to hide.
pub fn admin_token<B: Backend>(s: &Shared<B>, headers: &axum::http::HeaderMap) -> bool {
    if !s.tenants.enabled() {
        return true;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .and_then(|t| s.tenants.find(t))
        .is_some_and(|t| t.admin)
}

/// Middleware on the routes of one lease: the caller must be allowed that lease.
pub async fn lease_scope<B: Backend>(
    State(s): State<Shared<B>>,
    caller: Caller,
    params: RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    let Some(id) = params.iter().find(|(k, _)| *k == "id").map(|(_, v)| v) else {
        return ApiError::new(Code::NotFound, "no such route").into_response();
    };
    // A lease the caller may not see answers exactly as an ID no lease has (just after a
    // restart too, when that is `lease_not_restored_yet`).
    let allowed = match &caller {
        Caller::Open => Ok(()),
        Caller::Tenant(t) if t.admin => Ok(()),
        Caller::Lease(own) if own == id => Ok(()),
        Caller::Lease(_) => Err(s.manager.unknown_lease(id)),
        Caller::Tenant(t) => match s.manager.lease_tenant(id) {
            Ok(Some(owner)) if owner == t.name => Ok(()),
            // Another tenant's lease, or one of no tenant's.
            Ok(_) => Err(s.manager.unknown_lease(id)),
            Err(e) => Err(e),
        },
    };
    match allowed {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Middleware on the admin routes.
pub async fn admin_only(caller: Caller, req: Request, next: Next) -> Response {
    if caller.is_admin() {
        return next.run(req).await;
    }
    let who = match &caller {
        Caller::Lease(_) => "a lease token".to_string(),
        other => format!("tenant {:?}", other.label()),
    };
    ApiError::new(
        Code::Forbidden,
        format!("{who} may not use this route: it needs an admin tenant's token"),
    )
    .into_response()
}

/// Middleware on the tenant routes: a lease token opens its lease's routes alone.
pub async fn no_lease_token(caller: Caller, req: Request, next: Next) -> Response {
    if let Caller::Lease(id) = &caller {
        return ApiError::new(
            Code::Forbidden,
            format!("a lease token opens only its lease's routes, /v1/leases/{id} and below"),
        )
        .into_response();
    }
    next.run(req).await
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
