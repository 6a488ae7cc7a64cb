//! The simulation (placeholder while it is written).
