//! The secretvault agent: proves the pod's identity, fetches what its policies allow,
//! renders files and keeps them fresh. Tiny by design: no kube crates, one thread.

pub mod envfile;
pub mod template;
