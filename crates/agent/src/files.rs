//! Writing rendered secrets: a temp file in the same directory, fsync, rename, fsync of
//! the directory, so a reader sees the old file or the new one, never half of one, and
//! the new one survives a crash. Unchanged content is not rewritten (mtime stays).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::{info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file already held exactly this content (its mode was fixed if it differed).
    Unchanged,
    Written,
}

/// Writes `content` to `path` with `mode` unless it already holds it.
pub fn write_if_changed(path: &Path, content: &[u8], mode: u32) -> io::Result<WriteOutcome> {
    if let Ok(existing) = fs::read(path)
        && existing == content
    {
        let meta = fs::metadata(path)?;
        if meta.permissions().mode() & 0o7777 != mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        }
        return Ok(WriteOutcome::Unchanged);
    }
    write_atomic(path, content, mode)?;
    Ok(WriteOutcome::Written)
}

/// Replaces `path` with `content` atomically.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    if !dir.exists() {
        fs::create_dir_all(dir)?;
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have cleared bits of `mode`; the requested mode is the contract.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Runs `command` with `sh -c` after secret `secret`'s file changed. A failure or
/// timeout is logged, never fatal. Output goes to the agent's own stdout/stderr.
pub async fn run_command(secret: String, command: String, timeout: Duration) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            warn!(secret = %secret, error = %e, "could not start the secret's command (sh -c)");
            return;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            info!(secret = %secret, "the secret's command succeeded");
        }
        Ok(Ok(status)) => {
            warn!(secret = %secret, status = %status, "the secret's command failed; the file is written, the command will run again after the next change");
        }
        Ok(Err(e)) => {
            warn!(secret = %secret, error = %e, "waiting for the secret's command failed");
        }
        Err(_) => {
            let _ = child.kill().await;
            warn!(
                secret = %secret,
                timeout = %crate::duration::display(timeout),
                "the secret's command did not finish in time and was killed; raise command_timeout if it needs longer"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_with_mode_and_skips_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file");
        assert_eq!(
            write_if_changed(&path, b"one", 0o600).unwrap(),
            WriteOutcome::Written
        );
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            write_if_changed(&path, b"one", 0o644).unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            write_if_changed(&path, b"two", 0o644).unwrap(),
            WriteOutcome::Written
        );
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("file")]);
    }
}
