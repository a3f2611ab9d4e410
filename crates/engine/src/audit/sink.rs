//! Where audit lines go.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// A destination for audit lines. Each call writes one whole line (with its newline).
pub trait Sink: Send {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()>;
}

pub(super) struct StdoutSink;

impl Sink for StdoutSink {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        out.flush()
    }
}

pub(super) struct FileSink {
    file: File,
}

/// The most we read back from an existing log to find its last line.
const TAIL_WINDOW: u64 = 1 << 20;

impl FileSink {
    /// Opens `path` for appending (creating it with `mode`) and returns the hash of its
    /// last complete line, to continue the chain. A torn last line — a write cut short by
    /// a crash, never acknowledged — is cut off so the chain stays verifiable.
    pub(super) fn open(path: &Path, mode: u32) -> std::io::Result<(FileSink, [u8; 32])> {
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            // A device or pipe (/dev/stdout, a FIFO to a log shipper): nothing to resume.
            return Ok((FileSink { file }, [0; 32]));
        }
        let len = metadata.len();
        let start = len.saturating_sub(TAIL_WINDOW);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::with_capacity((len - start) as usize);
        file.read_to_end(&mut tail)?;
        let complete = match tail.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if start == 0 => 0,
            None => {
                return Err(std::io::Error::other(format!(
                    "the last line of {} is longer than {TAIL_WINDOW} bytes; is this an audit log?",
                    path.display()
                )));
            }
        };
        if complete < tail.len() {
            let torn = tail.len() - complete;
            tracing::warn!(file = %path.display(), bytes = torn, "audit log ended with a partial line (interrupted write); removing it");
            file.set_len(start + complete as u64)?;
            tail.truncate(complete);
        }
        let prev = match tail.strip_suffix(b"\n") {
            Some(body) => {
                let last = body.rsplit(|b| *b == b'\n').next().unwrap_or(body);
                if last.is_empty() {
                    [0; 32]
                } else {
                    Sha256::digest(last).into()
                }
            }
            None => [0; 32],
        };
        Ok((FileSink { file }, prev))
    }
}

impl Sink for FileSink {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        // One write of the whole line to an O_APPEND file: lines never interleave.
        self.file.write_all(line)
    }
}
