//! The mutating admission webhook that places the secretvault agent into pods.
//!
//! Not built yet: the injector issue fills this crate. It exists now so the workspace
//! layout shows every part of DESIGN.md §1 from the start.
