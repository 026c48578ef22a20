//! The kernel's readahead for this mount. FUSE offers a new mount 128 KiB
//! of readahead and lets the file system lower it, never raise it, in the
//! INIT reply; the window is the backing device's `read_ahead_kb` in
//! sysfs, which root may set once the mount is up. With 128 KiB a
//! sequential reader of a big file waits on one 128 KiB request at a time,
//! each a round trip through this process; with a few MiB the kernel keeps
//! requests of 1 MiB (`max_pages`) in flight while the reader copies.
//! Random and small reads are not affected: the kernel grows the window
//! only for reads it has seen to be sequential.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The window asked for: one block (4 MiB), so a sequential reader has
/// the next block's requests in flight while it reads the current one.
pub(crate) const WINDOW_KIB: u32 = 4096;

/// Widens the kernel's readahead for the mount at `mountpoint`. Stats the
/// mount first, which returns only once the kernel has taken the INIT
/// reply (that reply would undo an earlier setting). Best effort: without
/// root, or on a kernel without per-device sysfs, the mount keeps the
/// kernel's default and works as before.
pub(crate) fn widen(mountpoint: &Path, kib: u32) {
    let dev = match std::fs::metadata(mountpoint) {
        Ok(m) => m.dev(),
        Err(e) => {
            tracing::debug!("readahead left at the kernel's default: {e}");
            return;
        }
    };
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    match std::fs::write(&path, format!("{kib}\n")) {
        Ok(()) => tracing::debug!("readahead {kib} KiB ({path})"),
        Err(e) => tracing::debug!("readahead left at the kernel's default: {path}: {e}"),
    }
}
