//! Offline verification of an audit log's hash chain (`svctl audit verify`).

use std::io::BufRead;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first line of a new log.
pub const GENESIS_HASH: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// A log whose chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub lines: usize,
    /// `prev_hash` of the first line: the genesis value for a new log, or the hash of the
    /// last line of the log this one continues (after rotation).
    pub anchor: String,
    /// SHA-256 of the last line; record it elsewhere to detect later truncation.
    pub last_hash: String,
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ChainBreak {
    /// 1-based number of the first line that cannot be trusted.
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Broken { file: String, source: ChainBreak },
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::util::hex(&Sha256::digest(bytes)))
}

/// Checks that every line's `prev_hash` is the SHA-256 of the line before it.
pub fn verify_chain(mut reader: impl BufRead) -> Result<ChainReport, ChainBreak> {
    let mut line = Vec::new();
    let mut number = 0usize;
    let mut previous: Option<String> = None;
    let mut anchor = String::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| ChainBreak {
                line: number + 1,
                reason: format!("read error: {e}"),
            })?;
        if read == 0 {
            break;
        }
        number += 1;
        let complete = line.last() == Some(&b'\n');
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        if !complete {
            return Err(ChainBreak {
                line: number,
                reason: "the last line is incomplete (no newline): the log was cut off".into(),
            });
        }
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| ChainBreak {
            line: number,
            reason: "not a JSON audit entry (altered, or foreign text inserted)".into(),
        })?;
        let prev = value
            .get("prev_hash")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ChainBreak {
                line: number,
                reason: "has no prev_hash field (altered, or inserted)".into(),
            })?;
        match &previous {
            None => anchor = prev.to_string(),
            Some(expected) if expected != prev => {
                return Err(ChainBreak {
                    line: number - 1,
                    reason: format!(
                        "line {} does not hash to the prev_hash recorded in line {number}: line {} was altered, or lines between {} and {number} were removed or inserted",
                        number - 1,
                        number - 1,
                        number - 1
                    ),
                });
            }
            Some(_) => {}
        }
        previous = Some(sha256_hex(body));
    }
    match previous {
        Some(last_hash) => Ok(ChainReport {
            lines: number,
            anchor,
            last_hash,
        }),
        None => Ok(ChainReport {
            lines: 0,
            anchor: GENESIS_HASH.into(),
            last_hash: GENESIS_HASH.into(),
        }),
    }
}

pub fn verify_file(path: &Path) -> Result<ChainReport, VerifyError> {
    let file = std::fs::File::open(path).map_err(|source| VerifyError::Io {
        file: path.display().to_string(),
        source,
    })?;
    verify_chain(std::io::BufReader::new(file)).map_err(|source| VerifyError::Broken {
        file: path.display().to_string(),
        source,
    })
}
