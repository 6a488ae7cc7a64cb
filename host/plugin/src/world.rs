//! The three plugin worlds: their names in config, in the WIT package and on the API.

use std::fmt;

/// The three plugin worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// `sizing-policy`: how many containers to keep ready.
    Sizing,
    /// `exhaustion-strategy`: what to do with an acquire when no container is ready.
    Exhaustion,
    /// `health-check`: which probes to run on a container, and judging their results.
    Health,
}

impl World {
    /// The world's name in the WIT package, e.g. `sizing-policy`.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Sizing => "sizing-policy",
            World::Exhaustion => "exhaustion-strategy",
            World::Health => "health-check",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Sizing => "sizing",
            World::Exhaustion => "exhaustion",
            World::Health => "health",
        })
    }
}

impl std::str::FromStr for World {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sizing" | "sizing-policy" => Ok(World::Sizing),
            "exhaustion" | "exhaustion-strategy" => Ok(World::Exhaustion),
            "health" | "health-check" => Ok(World::Health),
            other => Err(format!(
                "unknown world {other:?} (sizing, exhaustion or health)"
            )),
        }
    }
}
