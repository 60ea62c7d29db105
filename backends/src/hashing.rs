//! File digests (size and sha256) for the provenance of weights in the run record.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use charter_record::FileDigest;

/// Size and SHA-256 of a file, for weights provenance.
pub fn file_digest(path: &Path) -> std::io::Result<FileDigest> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(FileDigest {
        path: path.display().to_string(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}
