//! `WARMPOOL_*` environment overrides, applied to the YAML tree before it is deserialised.
//!
//! A variable `WARMPOOL_SECTION__KEY[__KEY…]` sets the scalar at `section.key…`, e.g.
//! `WARMPOOL_SERVER__LISTEN=0.0.0.0:7070` or `WARMPOOL_POOLS__PYTHON__MIN_READY=4`. The double
//! underscore separates path segments because keys contain single ones; variables without it
//! (such as a token named by `auth_token_env`) are not overrides. Values are read as YAML
//! scalars, so `4` is a number and `true` a boolean.

use serde_yaml::{Mapping, Value};

use crate::Problem;

/// Prefix of every override variable; the rest is the path, split at `__`.
pub const PREFIX: &str = "WARMPOOL_";

/// Apply overrides from `vars` to `root`, returning a problem per variable that cannot apply.
pub fn apply(root: &mut Value, vars: impl IntoIterator<Item = (String, String)>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX) && k.contains("__"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let segments: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if segments.iter().any(String::is_empty) {
            problems.push(Problem::new(format!("env {name}"), "empty path segment"));
            continue;
        }
        let value = match serde_yaml::from_str::<Value>(&raw) {
            Ok(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
            _ => Value::String(raw.clone()),
        };
        if let Err(msg) = set(root, &segments, value) {
            problems.push(Problem::new(format!("env {name}"), msg));
        }
    }
    problems
}

fn set(node: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    if node.is_null() {
        *node = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(map) = node else {
        return Err("overrides a value that is not a mapping".into());
    };
    // Keys match case-insensitively, so pool names written in any case can be reached.
    let key = map
        .keys()
        .find(|k| k.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&path[0])))
        .cloned()
        .unwrap_or_else(|| Value::String(path[0].clone()));
    if path.len() == 1 {
        if matches!(map.get(&key), Some(Value::Mapping(_) | Value::Sequence(_))) {
            return Err(format!("{} is not a scalar setting", path[0]));
        }
        map.insert(key, value);
        return Ok(());
    }
    let child = map.entry(key).or_insert(Value::Null);
    set(child, &path[1..], value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_scalars_case_insensitively() {
        let mut v: Value = serde_yaml::from_str("pools:\n  Py:\n    image: x\n").unwrap();
        let p = apply(
            &mut v,
            [
                ("WARMPOOL_POOLS__PY__MIN_READY".into(), "4".into()),
                ("WARMPOOL_SERVER__LISTEN".into(), "0.0.0.0:1".into()),
                ("WARMPOOL_TOKEN".into(), "not an override".into()),
                ("WARMPOOL_POOLS__PY".into(), "3".into()),
            ],
        );
        assert_eq!(v["pools"]["Py"]["min_ready"], Value::from(4));
        assert_eq!(v["server"]["listen"], Value::from("0.0.0.0:1"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "env WARMPOOL_POOLS__PY");
    }
}
