//! Time and identity for the core: the wall clock derived from tokio's clock, instant arithmetic
//! that cannot overflow, and the source of lease IDs and container names.
//!
//! Everything the core stamps with a wall-clock time goes through [`Clock`], which follows tokio's
//! clock from a fixed origin. Under paused time (the simulation) that makes every run of a seed
//! produce the same times, and so the same decisions; in the daemon it is the system clock.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// About thirty years: the horizon of "never" for instants, far inside what `Instant` can hold.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `at + d`, saturating at a far horizon instead of panicking on overflow (a TTL of
/// `500000000y` must not crash an acquire).
pub fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR)).unwrap_or(at)
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-22T18:42:59.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Wall-clock time as a fixed origin plus tokio's elapsed time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    wall: SystemTime,
}

impl Clock {
    /// The system clock, as of now.
    pub fn system() -> Self {
        Self {
            origin: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// A clock that reads `wall` now and advances with tokio's clock (paused time included).
    pub fn starting_at(wall: SystemTime) -> Self {
        Self {
            origin: Instant::now(),
            wall,
        }
    }

    /// The wall-clock time of instant `at`.
    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.origin) {
            Some(d) => self.wall.checked_add(d).unwrap_or(self.wall),
            None => self
                .wall
                .checked_sub(self.origin - at)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }

    /// The wall-clock time now.
    pub fn now(&self) -> SystemTime {
        self.wall(Instant::now())
    }

    /// How long until wall-clock time `t`, from instant `now` (zero if it is past).
    pub fn until(&self, t: SystemTime, now: Instant) -> Duration {
        t.duration_since(self.wall(now)).unwrap_or(Duration::ZERO)
    }

    /// How long since wall-clock time `t`, at instant `now` (zero if it is in the future).
    pub fn since(&self, t: SystemTime, now: Instant) -> Duration {
        self.wall(now).duration_since(t).unwrap_or(Duration::ZERO)
    }
}

/// Where lease IDs and container names come from: random in the daemon, a seeded generator in
/// the simulation (so that a seed replays exactly).
#[derive(Debug)]
pub enum Ids {
    Random,
    Seeded(Mutex<fastrand::Rng>),
}

impl Ids {
    pub fn seeded(seed: u64) -> Self {
        Ids::Seeded(Mutex::new(fastrand::Rng::with_seed(seed)))
    }

    fn bytes(&self) -> [u8; 16] {
        match self {
            Ids::Random => *uuid::Uuid::new_v4().as_bytes(),
            Ids::Seeded(rng) => {
                let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
                rng.u128(..).to_le_bytes()
            }
        }
    }

    /// A new lease ID (a version 4 UUID).
    pub fn lease_id(&self) -> String {
        uuid::Builder::from_random_bytes(self.bytes())
            .into_uuid()
            .to_string()
    }

    /// A new container name for `pool`: `warmpool-<pool>-<10 hex digits>`.
    pub fn container_name(&self, pool: &str) -> String {
        format!("warmpool-{pool}-{}", &hex::encode(self.bytes())[..10])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_saturates() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }

    #[test]
    fn seeded_ids_repeat() {
        let (a, b) = (Ids::seeded(7), Ids::seeded(7));
        assert_eq!(a.lease_id(), b.lease_id());
        assert_eq!(a.container_name("p"), b.container_name("p"));
        assert!(Ids::Random.container_name("p").starts_with("warmpool-p-"));
    }
}
