//! An uploaded file belongs to the pool's `user`, however it is written (issue 21): a name is
//! looked up in the container's own /etc/passwd and /etc/group (the busybox image has
//! `nobody` = 65534:65534 and `nogroup` = 65534), so a sandbox running as `nobody` owns, and
//! can change, the files it was given. A name used to give uid 0.

use reqwest::Method;
use serde_json::json;
use warmpool_e2e::{Daemon, pool_yaml};

#[tokio::test]
async fn an_upload_is_owned_by_the_pools_user_by_name_or_number() {
    let cases = [
        ("byname", "nobody", "65534 65534"),
        ("namegroup", "nobody:root", "65534 0"),
        ("namegid", "nobody:0", "65534 0"),
        ("uidgroup", "1000:nogroup", "1000 65534"),
        ("numeric", "65534:65534", "65534 65534"),
    ];
    let pools: Vec<String> = cases
        .iter()
        .map(|(name, user, _)| pool_yaml(name, &format!("min_ready: 1\nuser: \"{user}\"")))
        .collect();
    let d = Daemon::start(&pools).await;
    for (pool, user, want) in cases {
        d.warm_up(pool).await;
        let lease = d.acquire(json!({"pool": pool})).await;
        let id = lease["lease_id"].as_str().unwrap();
        let (st, body) = d
            .raw(
                Method::PUT,
                &format!("/v1/leases/{id}/files/tmp/given/f.txt"),
                b"data".to_vec(),
            )
            .await;
        assert_eq!(st, 204, "{pool}: {}", String::from_utf8_lossy(&body));
        let out = d
            .exec(
                id,
                json!({"cmd": ["sh", "-c", "ls -ln /tmp/given/f.txt | awk '{print $3, $4}'; id -u; echo more >> /tmp/given/f.txt && echo writable"]}),
            )
            .await;
        let stdout = out["stdout"].as_str().unwrap();
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some(want), "{pool} ({user}): {out}");
        let uid = lines.next().unwrap_or_default();
        assert_eq!(
            Some(uid),
            want.split(' ').next(),
            "{pool}: the sandbox runs as {uid}"
        );
        assert_eq!(lines.next(), Some("writable"), "{pool}: {out}");
    }
}
