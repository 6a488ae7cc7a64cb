//! File calls have deadlines of the daemon's own, as every engine call does (issue 21): an
//! engine that never answers a file call, and a transfer whose bytes stop moving, end with an
//! error instead of holding the request forever; a slow transfer that keeps moving, and a
//! client that reads its download slowly, are never cut.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use warmpool_core::{
    AcquireRequest, BackendError, BuiltinExhaustion, FileBody, LeaseError, Manager, ManagerConfig,
};
use warmpool_fake::FakeBackend;

/// Longer than any deadline the daemon may put on a file call: what "forever" means here.
const FOREVER: Duration = Duration::from_secs(3600);

async fn leased() -> (Arc<Manager<FakeBackend>>, Arc<FakeBackend>, String) {
    let mut p = pool("p", 1, 1, 3);
    p.max_ttl = Duration::from_secs(86_400);
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(p, policies(BuiltinExhaustion::Fail))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m
        .acquire(AcquireRequest {
            pool: "p".into(),
            ttl: Some(Duration::from_secs(86_400)),
            ..Default::default()
        })
        .await
        .unwrap();
    (m, b, l.lease_id)
}

/// A body of `chunks` chunks of `size` bytes, one every `every`, then (if `stall`) no more
/// bytes ever, without ending.
fn trickle(chunks: usize, size: usize, every: Duration, stall: bool) -> FileBody {
    let s = futures_util::stream::iter(0..chunks)
        .then(move |i| async move {
            tokio::time::sleep(every).await;
            Ok::<_, BackendError>(Bytes::from(vec![i as u8; size]))
        })
        .chain(futures_util::stream::once(async move {
            if stall {
                std::future::pending::<()>().await;
            }
            Ok(Bytes::new())
        }))
        .filter(|c| std::future::ready(!matches!(c, Ok(b) if b.is_empty())));
    FileBody {
        len: (chunks * size) as u64 + u64::from(stall),
        body: Box::pin(s),
    }
}

#[tokio::test(start_paused = true)]
async fn a_file_call_the_engine_never_answers_ends_with_an_error() {
    let (m, b, id) = leased().await;
    m.put_file(&id, "/work/a", FileBody::from_bytes(b"a".to_vec()))
        .await
        .unwrap();
    {
        let mut w = b.state();
        w.faults.hang = 1.0;
        w.faults.hang_for = Duration::from_secs(86_400);
    }
    let t0 = tokio::time::Instant::now();
    let got = tokio::time::timeout(FOREVER, m.get_file(&id, "/work/a")).await;
    assert!(
        matches!(got, Ok(Err(_))),
        "a download the engine never answers still waits after {:?}",
        t0.elapsed()
    );
    let t0 = tokio::time::Instant::now();
    let put = m.put_file(&id, "/work/b", FileBody::from_bytes(b"b".to_vec()));
    let got = tokio::time::timeout(FOREVER, put).await;
    assert!(
        matches!(got, Ok(Err(_))),
        "an upload the engine never answers still waits after {:?}",
        t0.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn an_upload_whose_bytes_stop_ends_with_an_error() {
    let (m, _b, id) = leased().await;
    let put = m.put_file(
        &id,
        "/work/big",
        trickle(3, 1024, Duration::from_secs(1), true),
    );
    let got = tokio::time::timeout(FOREVER, put).await;
    match got {
        Ok(Err(LeaseError::Backend { source, .. })) => {
            assert!(source.to_string().contains("no byte"), "{source}");
        }
        other => panic!("a stalled upload: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_upload_that_keeps_moving_and_a_slow_reader_are_never_cut() {
    let (m, _b, id) = leased().await;
    // 20 chunks, 45 s apart: 15 minutes in all, far past any bound on a whole call.
    let put = m.put_file(
        &id,
        "/work/slow",
        trickle(20, 4096, Duration::from_secs(45), false),
    );
    tokio::time::timeout(FOREVER, put)
        .await
        .expect("the upload ended")
        .expect("a moving upload succeeds");
    let file = m.get_file(&id, "/work/slow").await.unwrap();
    assert_eq!(file.len, 20 * 4096);
    // A client that reads its download an hour later still gets every byte.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let data = file.collect().await.expect("a slow reader is not cut");
    assert_eq!(data.len(), 20 * 4096);
    assert_eq!(data[19 * 4096], 19);
}
