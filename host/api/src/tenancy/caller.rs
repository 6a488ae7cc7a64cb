//! Who a request is, as [`crate::auth::identify`] found it, and what that caller may see.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::Tenant;
use crate::ApiError;
use crate::code::Code;

/// Who a request is.
#[derive(Clone)]
pub enum Caller {
    /// No tenant is configured: the API is open (a loopback listener) and everyone is admin.
    Open,
    /// A tenant, by its token.
    Tenant(Arc<Tenant>),
    /// A lease token: lease `0` and nothing else.
    Lease(String),
}

impl Caller {
    /// Sees everything, and may reload, scale, warm up and see engines and plugins.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Open => true,
            Caller::Tenant(t) => t.admin,
            Caller::Lease(_) => false,
        }
    }

    /// The tenant a lease it opens belongs to.
    pub fn tenant(&self) -> Option<&Arc<Tenant>> {
        match self {
            Caller::Tenant(t) => Some(t),
            _ => None,
        }
    }

    /// Its name in logs and the audit: the tenant, `lease:<id>`, or `open`.
    pub fn label(&self) -> String {
        match self {
            Caller::Open => "open".into(),
            Caller::Tenant(t) => t.name.clone(),
            Caller::Lease(id) => format!("lease:{id}"),
        }
    }

    /// Whether it may see and use pool `name`.
    pub fn may_use(&self, pool: &str) -> bool {
        match self {
            Caller::Open => true,
            Caller::Tenant(t) => t.may_use(pool),
            Caller::Lease(_) => false,
        }
    }

    /// Whether it sees a lease `id` held by `tenant`, or an event about it.
    pub fn sees(&self, id: &str, tenant: Option<&str>) -> bool {
        match self {
            Caller::Open => true,
            Caller::Tenant(t) => t.admin || tenant == Some(t.name.as_str()),
            Caller::Lease(own) => own == id,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Set by `auth::identify` on every `/v1` route; a handler outside them that asked for
        // it would be a bug, refused rather than served as anyone.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new(Code::Unauthorized, "who is calling is not known"))
    }
}
