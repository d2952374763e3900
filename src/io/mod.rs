//! Files the tool writes: the one atomic writer, plots ([`plot`]), and the ownership rules
//! for run folders and output files ([`runfolder`]).

pub mod plot;
pub mod runfolder;

use anyhow::{Context, Result};
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("output path has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        fault::write_all(&mut f, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path).with_context(|| format!("cannot rename onto {}", path.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Fault injection for the tests: a disk that fills up.
#[doc(hidden)]
pub mod fault {
    use std::cell::Cell;
    use std::io::Write;

    thread_local! {
        static BYTES_LEFT: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// On this thread, [`super::write_atomic`] fails with ENOSPC ("No space left on device")
    /// once `bytes` more bytes have been written, until called again with None.
    pub fn disk_full_after(bytes: Option<u64>) {
        BYTES_LEFT.with(|c| c.set(bytes));
    }

    pub(super) fn write_all(f: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
        let Some(left) = BYTES_LEFT.with(|c| c.get()) else {
            return f.write_all(bytes);
        };
        let n = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        f.write_all(&bytes[..n])?;
        BYTES_LEFT.with(|c| c.set(Some(left - n as u64)));
        if n < bytes.len() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}
