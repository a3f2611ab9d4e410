//! Capabilities as a small bit set.

/// One capability a policy can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Deny,
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Sudo,
}

impl Capability {
    const ALL: [Capability; 8] = [
        Capability::Deny,
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Patch,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    pub fn name(self) -> &'static str {
        match self {
            Capability::Deny => "deny",
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
        }
    }

    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A set of capabilities; `deny` overrides everything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities {
    bits: u16,
    root: bool,
}

impl Capabilities {
    pub const NONE: Capabilities = Capabilities {
        bits: 0,
        root: false,
    };

    /// What the root policy grants (reported as `["root"]`).
    pub const ROOT: Capabilities = Capabilities {
        bits: 0b1111_1110,
        root: true,
    };

    pub fn of(caps: &[Capability]) -> Self {
        let mut out = Self::NONE;
        for c in caps {
            out.insert(*c);
        }
        out
    }

    pub fn insert(&mut self, c: Capability) {
        self.bits |= c.bit();
    }

    pub fn contains(&self, c: Capability) -> bool {
        if self.is_deny() {
            return false;
        }
        self.root || self.bits & c.bit() != 0
    }

    pub fn is_deny(&self) -> bool {
        self.bits & Capability::Deny.bit() != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0 && !self.root
    }

    /// Union, except that `deny` on either side leaves only `deny` (Vault's merge rule).
    pub fn merge(self, other: Capabilities) -> Capabilities {
        if self.is_deny() || other.is_deny() {
            return Capabilities::of(&[Capability::Deny]);
        }
        Capabilities {
            bits: self.bits | other.bits,
            root: self.root || other.root,
        }
    }

    /// The names `sys/capabilities` reports: sorted, `["root"]` for root, `["deny"]`
    /// when denied or when nothing is granted.
    pub fn names(&self) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        if self.is_deny() || self.bits == 0 {
            return vec!["deny"];
        }
        let mut names: Vec<&'static str> = Capability::ALL
            .into_iter()
            .filter(|c| self.bits & c.bit() != 0)
            .map(Capability::name)
            .collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_and_names_sort() {
        let rw = Capabilities::of(&[Capability::Update, Capability::Read]);
        assert_eq!(rw.names(), vec!["read", "update"]);
        let denied = rw.merge(Capabilities::of(&[Capability::Deny]));
        assert!(!denied.contains(Capability::Read));
        assert_eq!(denied.names(), vec!["deny"]);
        assert_eq!(Capabilities::NONE.names(), vec!["deny"]);
        assert_eq!(Capabilities::ROOT.names(), vec!["root"]);
        assert!(Capabilities::ROOT.contains(Capability::Sudo));
        assert_eq!(Capability::from_name("patch"), Some(Capability::Patch));
        assert_eq!(Capability::from_name("root"), None);
    }
}
