//! Reading a plugin's settings: the host hands each plugin the scalars under its `config:` entry
//! as key/value text pairs, so a guest needs no YAML or JSON parser.

/// Parse a number setting, naming the key when it is not one.
pub fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: {value:?} is not a whole number"))
}

/// Parse a real-number setting (`0.05`, `1e-3`), naming the key when it is not one.
pub fn real(key: &str, value: &str) -> Result<f64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: {value:?} is not a number"))
}

/// A command setting: a JSON list of strings, or shell text run by `sh -c`.
pub fn argv(key: &str, value: &str) -> Result<Vec<String>, String> {
    // A JSON list (nested YAML arrives as JSON text) or a plain command for `sh -c`.
    let v = value.trim();
    if v.starts_with('[') {
        serde_json::from_str(v).map_err(|e| format!("{key}: expected a list of strings ({e})"))
    } else {
        Ok(vec!["sh".into(), "-c".into(), v.to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_from_json_list_or_shell_text() {
        assert_eq!(
            argv("cmd", r#"["sh", "-c", "echo \"hi\""]"#).unwrap(),
            vec!["sh", "-c", "echo \"hi\""]
        );
        assert_eq!(
            argv("cmd", "test -e /x").unwrap(),
            vec!["sh", "-c", "test -e /x"]
        );
        assert!(argv("cmd", "[1, 2]").is_err());
    }
}
