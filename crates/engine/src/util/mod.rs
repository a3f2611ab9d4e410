//! Small helpers shared by the subsystems.

pub mod duration;
pub mod glob;
