//! Block files written and read past the page cache (`O_DIRECT`). A block
//! is written once, read rarely (clients cache blocks themselves) and
//! synced only when a commit needs it; through the page cache each byte
//! cost the server a copy into the cache and another out of it, and on a
//! machine with little memory bandwidth those copies were half the
//! server's time on a big write. Direct I/O needs a buffer, offset and
//! length aligned to the device's blocks: data not aligned in memory is
//! copied once into an aligned buffer, the tail is padded and cut back
//! with a truncate.
//! A file system without direct I/O (tmpfs) gets the buffered path.

use std::alloc::{dealloc, Layout};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bytes::Bytes;

/// Alignment that satisfies every common device (4 KiB sectors).
const ALIGN: usize = 4096;

/// A heap buffer aligned for direct I/O.
pub(crate) struct Aligned {
    ptr: *mut u8,
    cap: usize,
    len: usize,
}

// SAFETY: the buffer is plain owned memory, like a Vec<u8>.
unsafe impl Send for Aligned {}
unsafe impl Sync for Aligned {}

impl Aligned {
    /// A buffer of at least `len` bytes, rounded up to `ALIGN`, holding
    /// nothing yet: zeroing 4 MiB that a read then overwrites was a
    /// twentieth of the server's time on a cold read.
    fn new(len: usize) -> Option<Self> {
        let cap = len.div_ceil(ALIGN).max(1) * ALIGN;
        let layout = Layout::from_size_align(cap, ALIGN).ok()?;
        // SAFETY: layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            return None;
        }
        Some(Self { ptr, cap, len: 0 })
    }

    /// A buffer holding `data`, padded with zeros up to the alignment.
    fn holding(data: &[u8]) -> Option<Self> {
        let mut b = Self::new(data.len())?;
        // SAFETY: ptr is valid for cap >= data.len() bytes and does not
        // overlap `data`; the tail up to cap is then written with zeros,
        // so all cap bytes are initialized.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), b.ptr, data.len());
            std::ptr::write_bytes(b.ptr.add(data.len()), 0, b.cap - data.len());
        }
        b.len = b.cap;
        Some(b)
    }

    /// Reads from `f` into the buffer past its first `len` bytes: the
    /// count read, which then counts as held.
    fn read_more(&mut self, f: &File) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let room = self.cap - self.len;
        // SAFETY: ptr + len .. ptr + cap lies within the allocation; the
        // kernel writes at most `room` bytes there.
        let n = unsafe { libc::read(f.as_raw_fd(), self.ptr.add(self.len).cast(), room) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.len += n as usize;
        Ok(n as usize)
    }
}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first len bytes are initialized (see `holding` and
        // `read_more`), owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        if let Ok(layout) = Layout::from_size_align(self.cap, ALIGN) {
            // SAFETY: allocated in `new` with this very layout.
            unsafe { dealloc(self.ptr, layout) }
        }
    }
}

/// Creates `path` (it must not exist) holding `data`, written directly to
/// the device. `Ok(false)`: this file system has no direct I/O; nothing
/// was created.
pub(crate) fn write_new(path: &Path, data: &[u8]) -> std::io::Result<bool> {
    let f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
        Err(e) => return Err(e),
    };
    let res = (|| -> std::io::Result<()> {
        let mut w = &f;
        // Bytes already aligned (a block read into an aligned buffer, as
        // the block channel does) go to the device as they are; only an
        // unaligned tail is copied, into a padded buffer of its own.
        let body = if data.as_ptr() as usize % ALIGN == 0 {
            data.len() / ALIGN * ALIGN
        } else {
            0
        };
        w.write_all(&data[..body])?;
        let rest = &data[body..];
        if !rest.is_empty() {
            let buf =
                Aligned::holding(rest).ok_or_else(|| std::io::Error::other("out of memory"))?;
            w.write_all(buf.as_ref())?;
            f.set_len(data.len() as u64)?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            if e.raw_os_error() == Some(libc::EINVAL) {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// `path` opened for reading, past the page cache where the file system
/// allows.
pub(crate) fn open(path: &Path) -> std::io::Result<File> {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => File::open(path),
        r => r,
    }
}

/// The whole of `path`, read directly from the device; None if this file
/// system has no direct I/O.
pub(crate) fn read(path: &Path) -> std::io::Result<Option<Bytes>> {
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len() as usize;
    let mut buf = Aligned::new(len).ok_or_else(|| std::io::Error::other("out of memory"))?;
    loop {
        let n = match buf.read_more(&f) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // A short read is the end of the file (its tail is not aligned).
        if n == 0 || buf.len >= len || n % ALIGN != 0 {
            break;
        }
    }
    buf.len = buf.len.min(len);
    Ok(Some(Bytes::from_owner(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_aligned_and_unaligned_lengths() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [0usize, 1, 4095, 4096, 4097, 1 << 20, (4 << 20) - 3] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let p = dir.path().join(format!("b{len}"));
            if !write_new(&p, &data).expect("write") {
                std::fs::write(&p, &data).expect("buffered");
            }
            assert_eq!(std::fs::read(&p).expect("read back").len(), len);
            let got = match read(&p).expect("read") {
                Some(b) => b,
                None => Bytes::from(std::fs::read(&p).expect("buffered")),
            };
            assert!(got[..] == data[..], "length {len}");
            // The same bytes from memory that is already aligned: written
            // without the copy, with the same result.
            let aligned = Aligned::holding(&data).expect("buffer");
            let p = dir.path().join(format!("a{len}"));
            if write_new(&p, &aligned.as_ref()[..len]).expect("write aligned") {
                assert!(
                    std::fs::read(&p).expect("read back")[..] == data[..],
                    "aligned {len}"
                );
            }
        }
    }
}
