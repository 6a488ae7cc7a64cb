//! The quotas on tokio's paused clock.

use std::time::Duration;

use super::*;

const TTL: Duration = Duration::from_secs(60);

fn quotas(max: Option<u32>, rate: Option<f64>, secs: Option<u64>) -> Quotas {
    Quotas {
        max_leases: max,
        acquires_per_s: rate,
        lease_seconds_per_hour: secs,
    }
}

#[tokio::test(start_paused = true)]
async fn max_leases_counts_held_and_pending_acquires() {
    let u = Usage::new(quotas(Some(2), None, None));
    let a = u.admit(|| 0, TTL).unwrap();
    let b = u.admit(|| 0, TTL).unwrap();
    // Two pending: a third is refused though the core holds none yet.
    let r = u.admit(|| 0, TTL).err().unwrap();
    assert_eq!(r.quota, QuotaKind::MaxLeases);
    assert!(r.message.contains("2 of 2"), "{}", r.message);
    // One failed: its place is free again.
    drop(a);
    let c = u.admit(|| 0, TTL).unwrap();
    // Both in the core now (it counts them: `held`).
    drop(b);
    drop(c);
    assert_eq!(
        u.admit(|| 2, TTL).err().unwrap().quota,
        QuotaKind::MaxLeases
    );
    assert!(u.admit(|| 1, TTL).is_ok());
    assert_eq!(u.rejected(QuotaKind::MaxLeases), 2);
}

#[tokio::test(start_paused = true)]
async fn the_rate_is_a_bucket_of_one_second() {
    let u = Usage::new(quotas(None, Some(5.0), None));
    for _ in 0..5 {
        drop(u.admit(|| 0, TTL).unwrap());
    }
    let r = u.admit(|| 0, TTL).err().unwrap();
    assert_eq!(r.quota, QuotaKind::AcquiresPerS);
    assert_eq!(r.retry_after, Duration::from_millis(200));
    tokio::time::advance(Duration::from_millis(200)).await;
    assert!(u.admit(|| 0, TTL).is_ok());
    assert!(u.admit(|| 0, TTL).is_err());
    assert_eq!(u.rejected(QuotaKind::AcquiresPerS), 2);
    assert_eq!(u.acquires(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_rate_below_one_still_lets_one_through() {
    let u = Usage::new(quotas(None, Some(0.5), None));
    assert!(u.admit(|| 0, TTL).is_ok());
    let r = u.admit(|| 0, TTL).err().unwrap();
    assert_eq!(r.retry_after, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn lease_seconds_are_held_taken_refunded_and_refilled() {
    let u = Usage::new(quotas(None, None, Some(3600)));
    // An acquire of 600 s holds them while it runs; its lease enters the table (`take`), and
    // the hold goes back at its end.
    let a = u.admit(|| 0, Duration::from_secs(600)).unwrap();
    assert_eq!(u.seconds_used(), Some(600));
    u.take(Duration::from_secs(600));
    drop(a);
    assert_eq!(u.seconds_used(), Some(600));
    // While one acquire holds 3000, another of 100 does not fit.
    let big = u.admit(|| 0, Duration::from_secs(3000)).unwrap();
    let r = u.admit(|| 0, Duration::from_secs(100)).err().unwrap();
    assert_eq!(r.quota, QuotaKind::LeaseSecondsPerHour);
    // It failed: nothing was taken.
    drop(big);
    assert_eq!(u.seconds_used(), Some(600));
    // A lease of 1000 s, released with 400 left: 600 + 600 used.
    u.take(Duration::from_secs(1000));
    u.refund(Duration::from_secs(400));
    assert_eq!(u.seconds_used(), Some(1200));
    // 2400 left: 2500 is refused, and told when it would fit (100 s at 1 s/s).
    let r = u.admit(|| 0, Duration::from_secs(2500)).err().unwrap();
    assert_eq!(r.quota, QuotaKind::LeaseSecondsPerHour);
    assert_eq!(r.retry_after, Duration::from_secs(100));
    tokio::time::advance(Duration::from_secs(100)).await;
    assert!(u.admit(|| 0, Duration::from_secs(2500)).is_ok());
    // A renewal is charged the same way.
    assert_eq!(
        u.charge(Duration::from_secs(3000)).err().unwrap().quota,
        QuotaKind::LeaseSecondsPerHour
    );
    assert!(u.charge(Duration::ZERO).is_ok());
    // More than the whole budget never fits.
    let r = u.admit(|| 0, Duration::from_secs(3601)).err().unwrap();
    assert!(r.message.contains("whole budget"), "{}", r.message);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_takes_nothing_from_the_other_quotas() {
    let u = Usage::new(quotas(Some(1), Some(1.0), Some(100)));
    u.admit(|| 1, TTL).err().unwrap();
    // The rate token and the seconds are still there.
    assert!(u.admit(|| 0, Duration::from_secs(100)).is_ok());
}

#[tokio::test(start_paused = true)]
async fn without_quotas_everything_passes() {
    let u = Usage::new(Quotas::default());
    for _ in 0..1000 {
        drop(
            u.admit(|| 1_000_000, Duration::from_secs(1_000_000))
                .unwrap(),
        );
    }
    assert_eq!(u.seconds_used(), None);
}
