//! The toolkit every validation step uses: collecting problems at their YAML paths, reading one
//! section without stopping at its first error, and parsing durations and sizes within a range.
//! A leaf module: it knows nothing of any section.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, Visitor};
use serde_yaml::Value;

use crate::Problem;
use crate::raw::Size;

/// Largest config file read, and most YAML nodes it may expand to with its aliases: a small file
/// whose aliases expand to billions of nodes (an alias bomb) is refused before anything is built.
pub(crate) const MAX_BYTES: usize = 1 << 20;
pub(crate) const MAX_NODES: usize = 100_000;

/// Largest number of containers a daemon may be configured to keep, over all pools. Here, among
/// the bounds, because both `limits:` (validate.rs) and each pool (pool.rs) are held to it.
pub const MAX_CONTAINERS: u32 = 100_000;

/// Collects problems as validation walks the tree.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.0.push(Problem::new(path, msg));
    }

    /// Deserialise `v` as `T`, reporting a failure at `base` + the path inside `v`.
    pub(crate) fn section<T: DeserializeOwned + Default>(
        &mut self,
        base: &str,
        v: Option<&Value>,
    ) -> Option<T> {
        match v {
            None | Some(Value::Null) => Some(T::default()),
            Some(v) => self.de(base, v),
        }
    }

    /// Deserialise `v` as `T`, reporting *every* problem: serde stops at the first error, so
    /// each offending key is reported, dropped from a copy of the tree, and the rest read again.
    /// An unknown key alone leaves the rest usable; any other error makes the section fail
    /// (after all its problems are reported).
    pub(crate) fn de<T: DeserializeOwned>(&mut self, base: &str, v: &Value) -> Option<T> {
        let mut v = v.clone();
        let mut removed: BTreeSet<String> = BTreeSet::new();
        let mut broken = false;
        for _ in 0..64 {
            let e = match serde_path_to_error::deserialize::<_, T>(v.clone()) {
                Ok(t) if !broken => return Some(t),
                Ok(_) => return None,
                Err(e) => e,
            };
            // Map keys from the root down to the first list index: the key to drop.
            let segments: Vec<String> = e
                .path()
                .iter()
                .map_while(|s| match s {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    _ => None,
                })
                .collect();
            let inner = e.path().to_string();
            let path = if inner == "." {
                base.to_string()
            } else {
                format!("{base}.{inner}")
            };
            let message = e.into_inner().to_string();
            // A required key we dropped ourselves is already reported.
            let missing_dropped = message
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next())
                .is_some_and(|f| {
                    let key = if inner == "." {
                        f.to_string()
                    } else {
                        format!("{inner}.{f}")
                    };
                    removed.contains(&key)
                });
            if !missing_dropped {
                self.push(path, message.clone());
            }
            if !message.starts_with("unknown field") {
                broken = true;
            }
            if segments.is_empty() || !remove_key(&mut v, &segments) {
                return None;
            }
            removed.insert(segments.join("."));
        }
        None
    }

    /// A duration in `[min, max]`, or `default` when absent.
    pub(crate) fn duration_in(
        &mut self,
        path: &str,
        v: &Option<String>,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(s) = v else { return default };
        match humantime::parse_duration(s) {
            Ok(d) if d < min || d > max => {
                self.push(
                    path,
                    format!(
                        "{s:?} is out of range: give between {} and {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.push(
                    path,
                    format!("invalid duration {s:?}: {e} (write e.g. \"30s\", \"10m\")"),
                );
                default
            }
        }
    }

    /// A byte size in `[min, max]`, or `default` when absent.
    pub(crate) fn size_in(
        &mut self,
        path: &str,
        v: &Option<Size>,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let n = match v {
            None => return default,
            Some(Size::Bytes(n)) => *n,
            Some(Size::Text(s)) => match parse_size(s) {
                Some(n) => n,
                None => {
                    self.push(
                        path,
                        format!("invalid size {s:?} (write e.g. 512m, 2g, 1048576)"),
                    );
                    return default;
                }
            },
        };
        if n < min || n > max {
            self.push(
                path,
                format!("{n} bytes is out of range: give between {min} and {max} bytes"),
            );
            return default;
        }
        n
    }

    /// A count in `[min, max]`, or `default` when absent.
    pub(crate) fn count_in(
        &mut self,
        path: &str,
        v: Option<u32>,
        default: u32,
        min: u32,
        max: u32,
    ) -> u32 {
        match v {
            None => default,
            Some(n) if n < min || n > max => {
                self.push(
                    path,
                    format!("{n} is out of range: give between {min} and {max}"),
                );
                default.clamp(min, max)
            }
            Some(n) => n,
        }
    }
}

/// Remove the key at `path` (mapping keys from the root); false if it is not there.
fn remove_key(v: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = v;
    for k in parents {
        match node.get_mut(k.as_str()) {
            Some(n) => node = n,
            None => return false,
        }
    }
    node.as_mapping_mut()
        .and_then(|m| m.remove(last.as_str()))
        .is_some()
}

/// `512m`, `2g`, `64KiB`, `1048576`: binary units, as Docker reads them. The core's, which
/// the API reads a lease's `memory` with: one reading of a size everywhere.
pub use warmpool_core::parse_size;

pub(crate) fn key_name(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Check the text's size and how many nodes its aliases expand to, before building anything.
pub(crate) fn bounded(text: &str) -> Result<(), Problem> {
    if text.len() > MAX_BYTES {
        return Err(Problem::new(
            "(file)",
            format!("{} bytes; a config may be at most {MAX_BYTES}", text.len()),
        ));
    }
    let count = Cell::new(0usize);
    // Each document in turn; the first error is the answer.
    for doc in serde_yaml::Deserializer::from_str(text) {
        if let Err(e) = Budget(&count).deserialize(doc) {
            let msg = e.to_string();
            if msg.contains("nodes") {
                return Err(Problem::new("(yaml)", msg));
            }
            // A syntax error is reported by the parse that follows, with its position.
            return Ok(());
        }
    }
    Ok(())
}

/// Counts every node a deserialiser walks, aliases expanded, and stops at [`MAX_NODES`].
struct Budget<'a>(&'a Cell<usize>);

impl Budget<'_> {
    fn tick<E: de::Error>(&self) -> Result<(), E> {
        let n = self.0.get() + 1;
        self.0.set(n);
        if n > MAX_NODES {
            return Err(E::custom(format!(
                "the document expands to more than {MAX_NODES} nodes (aliases included); refusing it"
            )));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Budget<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budget<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.tick()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.tick()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.tick()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.tick()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.tick()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.tick()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.tick()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.tick()?;
        Budget(self.0).deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.tick()?;
        while seq.next_element_seed(Budget(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.tick()?;
        while map.next_key_seed(Budget(self.0))?.is_some() {
            map.next_value_seed(Budget(self.0))?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        self.tick()?;
        let ((), variant) = data.variant_seed(Budget(self.0))?;
        variant.newtype_variant_seed(Budget(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("64KiB"), Some(64 << 10));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("9999999999999t"), None);
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            text.push_str(&format!(
                "{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let err = bounded(&text).unwrap_err();
        assert!(err.message.contains("nodes"), "{err}");
        assert!(bounded("server: {listen: 1.2.3.4:5}\npools: {a: {image: x}}").is_ok());
    }
}
