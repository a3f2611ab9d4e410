//! The root key: the one secret that unlocks the keyring.
//!
//! In dev mode it is a file in the data directory (mode 0600, created on first start);
//! in a cluster it comes from a Kubernetes Secret or a mounted file. The file holds the
//! key base64-encoded on one line so it can be pasted into a Secret.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::{CryptoError, Key256, random_key};

pub struct RootKey(Key256);

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

impl RootKey {
    pub fn from_bytes(bytes: Key256) -> Self {
        RootKey(bytes)
    }

    pub fn generate() -> Self {
        RootKey(random_key())
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the base64 text form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::RootKey("the root key is not valid base64".into()))?,
        );
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            CryptoError::RootKey(format!(
                "the root key must be 32 bytes, found {}",
                decoded.len()
            ))
        })?;
        Ok(RootKey(Zeroizing::new(bytes)))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_slice()))
    }

    /// Loads the key from `path`, creating it (mode 0600, parent directory 0700) when absent.
    /// Refuses a key file that group or others can read.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path)?;
                Self::from_base64(&Zeroizing::new(text))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(path, key.to_base64().as_bytes()).map_err(|e| {
                    CryptoError::RootKey(format!("cannot create {}: {e}", path.display()))
                })?;
                Ok(key)
            }
            Err(e) => Err(CryptoError::RootKey(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), CryptoError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| CryptoError::RootKey(format!("cannot stat {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(CryptoError::RootKey(format!(
            "{} is readable by group or others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), CryptoError> {
    Ok(())
}

/// Writes a new file readable only by its owner, durably (fsync of file and directory).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates a directory (and parents) with mode 0700 where it does not exist yet.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/root.key");
        let a = RootKey::load_or_create(&path).unwrap();
        let b = RootKey::load_or_create(&path).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_world_readable_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        RootKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = RootKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn rejects_bad_text() {
        assert!(RootKey::from_base64("not base64!").is_err());
        assert!(
            RootKey::from_base64("AAAA")
                .unwrap_err()
                .to_string()
                .contains("32 bytes")
        );
        assert!(format!("{:?}", RootKey::generate()).contains("redacted"));
    }
}
