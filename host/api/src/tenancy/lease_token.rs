//! Lease tokens: `wpl.<lease id>.<mac>`, where the MAC is HMAC-SHA256 of the lease ID under the
//! daemon's key. A token opens its lease alone, and only while the lease lives: nothing is
//! stored per lease, and a lease ID is never reused. The daemon keeps the key in `state_dir`,
//! so the tokens of leases that survive a restart keep working.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What every lease token starts with, so a client (and a log scrubber) can tell one.
pub const PREFIX: &str = "wpl.";

/// A fresh random key, from the OS.
pub fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the OS random source");
    key
}

/// The key lease tokens are made with.
#[derive(Clone)]
pub struct LeaseKeys {
    key: [u8; 32],
}

impl std::fmt::Debug for LeaseKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseKeys(<redacted>)")
    }
}

impl LeaseKeys {
    /// Tokens made with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// A fresh random key: tokens that do not outlive the process.
    pub fn random() -> Self {
        Self { key: random_key() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(b"warmpool lease token v1\0");
        m
    }

    /// The token of lease `id`.
    pub fn mint(&self, id: &str) -> String {
        let mut m = self.mac();
        m.update(id.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        format!("{PREFIX}{id}.{tag}")
    }

    /// The lease ID a token opens, if it is one this daemon made (checked in constant time).
    pub fn verify<'t>(&self, token: &'t str) -> Option<&'t str> {
        let rest = token.strip_prefix(PREFIX)?;
        let (id, tag) = rest.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut m = self.mac();
        m.update(id.as_bytes());
        m.verify_slice(&tag).ok()?;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_lease_and_a_forgery_nothing() {
        let k = LeaseKeys::new([7; 32]);
        let t = k.mint("0b5e-lease");
        assert!(t.starts_with("wpl.0b5e-lease."));
        assert_eq!(k.verify(&t), Some("0b5e-lease"));
        // Another lease's ID with this tag, a changed tag, another key: nothing.
        let tag = t.rsplit_once('.').unwrap().1;
        assert_eq!(k.verify(&format!("wpl.other.{tag}")), None);
        let mut bad = t.clone();
        bad.pop();
        bad.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(k.verify(&bad), None);
        assert_eq!(LeaseKeys::new([8; 32]).verify(&t), None);
        for junk in ["", "wpl.", "wpl..", "wpl.x", "wpl.x.!!", "Bearer x"] {
            assert_eq!(k.verify(junk), None, "{junk}");
        }
        assert_ne!(LeaseKeys::random().mint("a"), LeaseKeys::random().mint("a"));
    }
}
