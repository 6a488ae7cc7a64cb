//! Tenants: who is calling, and what they may see and do.
//!
//! - [`Tenants`] holds each tenant's token as a SHA-256 hash only, and finds a caller by the
//!   hash of the token it sends, compared in constant time.
//! - [`caller::Caller`] is what a request is: the open API (no tenants configured), a tenant
//!   (an admin one sees everything), or a lease token that opens one lease.
//! - [`lease_token`] mints and checks lease tokens: an HMAC of the lease ID under the daemon's
//!   key, so nothing is stored per lease and a token dies with its lease.
//! - [`quota`] keeps each tenant's use: leases at once, acquires per second, lease-seconds
//!   per hour.
//! - [`metrics`] exports each tenant's counts at scrape time.
//!
//! The checks themselves, on every `/v1` route, are middleware in [`crate::auth`].

pub mod caller;
pub mod lease_token;
pub mod metrics;
pub mod quota;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use quota::{QuotaKind, Quotas, Rejection};

/// A tenant as the daemon configures it: its name, its token (hashed at once by
/// [`Tenants::new`]), its pools and quotas.
#[derive(Clone)]
pub struct TenantSpec {
    /// Its name: on its leases, events and metrics.
    pub name: String,
    /// Its bearer token.
    pub token: String,
    /// Sees and may do everything.
    pub admin: bool,
    /// The pools it may use; `None`: every pool.
    pub pools: Option<BTreeSet<String>>,
    /// Its quotas.
    pub quotas: Quotas,
}

impl TenantSpec {
    /// An admin tenant without quotas: what `server.auth_token_env` stands for.
    pub fn admin(name: &str, token: &str) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
            admin: true,
            pools: None,
            quotas: Quotas::default(),
        }
    }
}

impl std::fmt::Debug for TenantSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSpec")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("admin", &self.admin)
            .field("pools", &self.pools)
            .field("quotas", &self.quotas)
            .finish()
    }
}

/// A tenant as the API keeps it.
pub struct Tenant {
    /// Its name.
    pub name: String,
    /// Sees and may do everything.
    pub admin: bool,
    /// The pools it may use; `None`: every pool.
    pub pools: Option<BTreeSet<String>>,
    /// Its quotas and its use of them.
    pub usage: quota::Usage,
    hash: [u8; 32],
}

impl Tenant {
    /// Whether it may use (and see) pool `name`.
    pub fn may_use(&self, pool: &str) -> bool {
        self.admin || self.pools.as_ref().is_none_or(|p| p.contains(pool))
    }
}

/// Every tenant. Empty: the API is open (a loopback listener without tokens).
#[derive(Default)]
pub struct Tenants {
    all: Vec<Arc<Tenant>>,
    /// Index in `all` by token hash.
    by_hash: HashMap<[u8; 32], usize>,
}

impl Tenants {
    /// Keep each tenant with its token's hash; the tokens themselves are dropped here.
    pub fn new(specs: Vec<TenantSpec>) -> Self {
        let all: Vec<Arc<Tenant>> = specs
            .into_iter()
            .map(|s| {
                Arc::new(Tenant {
                    hash: hash(&s.token),
                    usage: quota::Usage::new(s.quotas),
                    name: s.name,
                    admin: s.admin,
                    pools: s.pools,
                })
            })
            .collect();
        let by_hash = all.iter().enumerate().map(|(i, t)| (t.hash, i)).collect();
        Self { all, by_hash }
    }

    /// Whether any tenant is configured (otherwise the API is open).
    pub fn enabled(&self) -> bool {
        !self.all.is_empty()
    }

    /// The tenant whose token this is. The token is looked up by its SHA-256 hash and the hash
    /// compared in constant time: how long it takes depends on the hash alone, which says
    /// nothing of how much of a guessed token is right (a byte-by-byte search would need
    /// preimages). One lookup whatever the number of tenants.
    pub fn find(&self, token: &str) -> Option<Arc<Tenant>> {
        let h = hash(token);
        let t = &self.all[*self.by_hash.get(&h)?];
        bool::from(t.hash.ct_eq(&h)).then(|| t.clone())
    }

    /// Tenant `name`, if configured.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.all.iter().find(|t| t.name == name)
    }

    /// Every tenant, in config order.
    pub fn all(&self) -> &[Arc<Tenant>] {
        &self.all
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, token: &str) -> TenantSpec {
        TenantSpec {
            name: name.into(),
            token: token.into(),
            admin: false,
            pools: Some(["p".to_string()].into()),
            quotas: Quotas::default(),
        }
    }

    #[test]
    fn a_token_finds_its_own_tenant_and_no_other() {
        let t = Tenants::new(vec![spec("a", "tok-a"), spec("b", "tok-b")]);
        assert_eq!(t.find("tok-a").unwrap().name, "a");
        assert_eq!(t.find("tok-b").unwrap().name, "b");
        assert!(t.find("tok-").is_none());
        assert!(t.find("tok-a ").is_none());
        assert!(t.find("").is_none());
        assert!(t.enabled());
        assert!(!Tenants::default().enabled());
    }

    #[test]
    fn a_tenant_uses_only_its_pools_and_an_admin_every_pool() {
        let t = Tenants::new(vec![spec("a", "x")]);
        let a = t.find("x").unwrap();
        assert!(a.may_use("p"));
        assert!(!a.may_use("q"));
        let mut admin = spec("ops", "y");
        admin.admin = true;
        let t = Tenants::new(vec![admin]);
        assert!(t.find("y").unwrap().may_use("q"));
    }

    #[test]
    fn the_debug_form_hides_the_token() {
        assert!(!format!("{:?}", spec("a", "s3cr3t")).contains("s3cr3t"));
    }
}
