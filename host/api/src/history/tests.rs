//! The history under tokio's paused time: the sampler's ticks, what each sample holds, the
//! ring's bound and the pools it keeps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::*;

fn gauges(ready: u32, leased: u32, waiting: u32) -> Gauges {
    Gauges {
        ready,
        leased,
        waiting,
    }
}

/// A sampler over pools whose counts the test sets; its token.
fn start(
    history: &Arc<History>,
    now: &Arc<Mutex<Vec<(String, Gauges)>>>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let now = now.clone();
    let task = tokio::spawn(sampler::run(
        history.clone(),
        move || now.lock().unwrap().clone(),
        cancel.clone(),
    ));
    (cancel, task)
}

fn at(s: &Sample) -> SystemTime {
    humantime::parse_rfc3339(&s.at).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_sample_each_interval_holds_the_counts_and_that_intervals_acquires() {
    let h = Arc::new(History::new(DEFAULT_INTERVAL));
    let now = Arc::new(Mutex::new(vec![("py".to_string(), gauges(2, 0, 0))]));
    let (cancel, task) = start(&h, &now);
    // The first sample is taken at once.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(h.samples("py").len(), 1);

    // Three acquires in the first interval: two warm, one cold; a lease is out at the tick.
    h.record_acquire("py", true, Duration::from_micros(400));
    h.record_acquire("py", true, Duration::from_micros(600));
    h.record_acquire("py", false, Duration::from_millis(300));
    *now.lock().unwrap() = vec![("py".to_string(), gauges(1, 3, 0))];
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Nothing in the second; someone waits at its tick.
    *now.lock().unwrap() = vec![("py".to_string(), gauges(0, 3, 2))];
    tokio::time::sleep(Duration::from_secs(10)).await;

    let s = h.samples("py");
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!((s[0].ready, s[0].leased, s[0].acquires), (2, 0, 0));
    assert_eq!(s[0].hit_rate, None);
    assert_eq!(s[0].latency_ms_p50, None);
    let one = &s[1];
    assert_eq!((one.ready, one.leased, one.waiting), (1, 3, 0));
    assert_eq!((one.acquires, one.warm, one.cold), (3, 2, 1));
    assert_eq!(one.hit_rate, Some(2.0 / 3.0));
    // Nearest rank: the 2nd of 3 is the median, the 3rd the 95th percentile.
    let p50 = one.latency_ms_p50.unwrap();
    assert!((p50 - 0.6).abs() < 0.04, "{p50}");
    assert_eq!(one.latency_ms_p95, Some(300.0));
    let two = &s[2];
    assert_eq!((two.leased, two.waiting, two.acquires), (3, 2, 0));
    assert_eq!(two.hit_rate, None);
    // Samples are an interval apart, on tokio's clock.
    for w in s.windows(2) {
        assert_eq!(
            at(&w[1]).duration_since(at(&w[0])).unwrap(),
            DEFAULT_INTERVAL
        );
    }

    // The daemon's token stops it.
    cancel.cancel();
    task.await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.samples("py").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_ring_keeps_the_last_hour_whatever_the_pool_count() {
    let h = Arc::new(History::new(DEFAULT_INTERVAL));
    let pools: Vec<(String, Gauges)> = (0..50)
        .map(|i| (format!("pool-{i}"), gauges(i, 0, 0)))
        .collect();
    let now = Arc::new(Mutex::new(pools));
    let (cancel, task) = start(&h, &now);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let first = h.samples("pool-7")[0].clone();
    // Two hours, with an acquire in every interval.
    for _ in 0..720 {
        h.record_acquire("pool-7", true, Duration::from_millis(1));
        tokio::time::sleep(DEFAULT_INTERVAL).await;
    }
    assert_eq!(h.held(), (50 * CAPACITY, 50));
    // What the module's doc says a pool's ring costs: 360 samples of at most 56 bytes.
    assert!(std::mem::size_of::<Tick>() <= 56);
    let s = h.samples("pool-7");
    assert_eq!(s.len(), CAPACITY);
    // The oldest kept is an hour old, and the first sample is long gone.
    let span = at(&s[CAPACITY - 1]).duration_since(at(&s[0])).unwrap();
    assert_eq!(span, DEFAULT_INTERVAL * (CAPACITY as u32 - 1));
    assert!(at(&s[0]) > at(&first));
    assert!(s.iter().all(|x| x.acquires == 1 && x.hit_rate == Some(1.0)));
    assert_eq!(s[0].ready, 7);

    // A reload removed all pools but one: the others are gone at the next tick.
    *now.lock().unwrap() = vec![("pool-7".to_string(), gauges(7, 0, 0))];
    tokio::time::sleep(DEFAULT_INTERVAL).await;
    assert_eq!(h.held(), (CAPACITY, 1));
    assert!(h.samples("pool-8").is_empty());
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_acquire_of_a_pool_before_its_first_tick_counts_in_its_first_sample() {
    let h = Arc::new(History::new(Duration::from_millis(500)));
    let now = Arc::new(Mutex::new(vec![("old".to_string(), gauges(1, 0, 0))]));
    let (cancel, task) = start(&h, &now);
    tokio::time::sleep(Duration::from_millis(1)).await;
    // A pool a reload just added serves an acquire before the sampler has seen it.
    h.record_acquire("new", false, Duration::from_millis(250));
    assert!(h.samples("new").is_empty());
    *now.lock().unwrap() = vec![
        ("old".to_string(), gauges(1, 0, 0)),
        ("new".to_string(), gauges(0, 1, 0)),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = h.samples("new");
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].acquires, s[0].cold, s[0].leased), (1, 1, 1));
    assert_eq!(s[0].hit_rate, Some(0.0));
    assert_eq!(s[0].latency_ms_p50, Some(250.0));
    assert_eq!(h.interval(), Duration::from_millis(500));
    cancel.cancel();
    task.await.unwrap();
}
