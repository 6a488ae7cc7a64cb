//! Validation of the plugin settings (`plugins:`) and of a pool's plugin entries
//! (`pools.NAME.plugins.*`): paths, and each plugin's config flattened for its `init`.

use std::time::Duration;

use serde_yaml::Value;

use crate::problems::{Problems, key_name};
use crate::raw::{RawPluginRef, RawPluginSettings};

/// `plugins:`: the settings every plugin runs under.
pub(crate) fn validate_plugin_settings(
    p: &mut Problems,
    raw: &RawPluginSettings,
    host_id: &str,
) -> crate::PluginSettings {
    let deadline = p.duration_in(
        "plugins.deadline",
        &raw.deadline,
        Duration::from_millis(50),
        Duration::from_millis(10),
        Duration::from_secs(10),
    );
    let load_deadline = p.duration_in(
        "plugins.load_deadline",
        &raw.load_deadline,
        Duration::from_secs(2),
        Duration::from_millis(10),
        Duration::from_secs(60),
    );
    let max_memory = p.size_in(
        "plugins.max_memory",
        &raw.max_memory,
        64 << 20,
        1 << 20,
        4 << 30,
    );
    let bench_after = p.count_in("plugins.bench_after", raw.bench_after, 5, 1, 1000);
    let cache_dir = raw.cache_dir.as_ref().map_or_else(
        || std::env::temp_dir().join(format!("warmpool-plugin-cache-{host_id}")),
        std::path::PathBuf::from,
    );
    crate::PluginSettings {
        cache_dir,
        deadline,
        load_deadline,
        max_memory: max_memory as usize,
        bench_after,
    }
}

/// A plugin entry: its path, and its config flattened to text pairs for the guest's `init`.
pub(crate) fn plugin_ref(
    p: &mut Problems,
    path: &str,
    raw: &Option<RawPluginRef>,
) -> Option<crate::PluginRef> {
    let raw = raw.as_ref()?;
    if raw.path.trim().is_empty() {
        p.push(format!("{path}.path"), "must name a .wasm file");
    }
    let mut config = Vec::new();
    for (k, v) in &raw.config {
        let key = key_name(k);
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            // Nested values reach the guest as JSON, which every language can read.
            other => match serde_json::to_string(other) {
                Ok(j) => j,
                Err(e) => {
                    p.push(
                        format!("{path}.config.{key}"),
                        format!("cannot be passed to the plugin: {e}"),
                    );
                    continue;
                }
            },
        };
        config.push((key, text));
    }
    Some(crate::PluginRef {
        path: raw.path.clone().into(),
        config,
    })
}
