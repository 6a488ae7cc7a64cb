//! `warmpool scale POOL [N] [--max M] [--clear]`: set or clear a pool's scale override on a
//! running daemon (`PUT`/`DELETE /v1/pools/{name}/scale`) and print the sizes it runs on.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::Conn;

/// Set `min_ready` and/or `max_ready` (a size not given is the config's), or clear the
/// override. Prints one line: the sizes the pool runs on now, and where they come from.
pub async fn run(
    c: &Conn,
    pool: &str,
    min_ready: Option<u64>,
    max_ready: Option<u64>,
    clear: bool,
) -> ExitCode {
    let path = format!("/v1/pools/{pool}/scale");
    let req = if clear {
        c.req(Method::DELETE, &path)
    } else {
        let mut body = Map::new();
        if let Some(n) = min_ready {
            body.insert("min_ready".into(), json!(n));
        }
        if let Some(n) = max_ready {
            body.insert("max_ready".into(), json!(n));
        }
        c.req(Method::PUT, &path).json(&Value::Object(body))
    };
    match c.send(req).await {
        Ok((_, p)) => {
            println!("{}", describe(pool, &p));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `POOL: min_ready=N max_ready=M (override; config 1..4), target T, R ready`, or the same
/// with `(config)` when no override holds.
fn describe(pool: &str, p: &Value) -> String {
    let o = &p["override"];
    let sizes = if o.is_object() {
        format!(
            "min_ready={} max_ready={} (override; config {}..{})",
            o["min_ready"], o["max_ready"], p["min_ready"], p["max_ready"]
        )
    } else {
        format!(
            "min_ready={} max_ready={} (config)",
            p["min_ready"], p["max_ready"]
        )
    };
    format!(
        "{pool}: {sizes}, target {}, {} ready",
        p["target"], p["counts"]["ready"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_where_the_sizes_come_from() {
        let with = json!({"min_ready": 1, "max_ready": 4, "override": {"min_ready": 3, "max_ready": 4},
            "target": 3, "counts": {"ready": 2}});
        assert_eq!(
            describe("py", &with),
            "py: min_ready=3 max_ready=4 (override; config 1..4), target 3, 2 ready"
        );
        let without = json!({"min_ready": 1, "max_ready": 4, "override": null,
            "target": 1, "counts": {"ready": 1}});
        assert_eq!(
            describe("py", &without),
            "py: min_ready=1 max_ready=4 (config), target 1, 1 ready"
        );
    }
}
