//! The block channel: a client on the server's own host moves blocks as
//! open file descriptors (`SCM_RIGHTS`) over a Unix socket instead of as
//! bytes in gRPC messages. To read, it gets a read-only descriptor of the
//! stored block and reads it straight from the disk; to write, it hands
//! the server a memfd holding the block, which the server copies once
//! into its own buffer. Either way no byte goes through a protobuf
//! message, HTTP/2 framing or TCP on either side. gRPC stays the protocol
//! for everything else, and for blocks wherever the channel is missing or
//! refuses.
//!
//! The exchange, over a stream socket:
//!
//! 1. server → client: `GREETING` and the server's 16-byte instance id
//!    (told to authenticated callers by the `BlockChannel` RPC). A client
//!    that finds another id hangs up before it says anything.
//! 2. client → server: the token, as a big-endian `u16` length and bytes.
//! 3. server → client: a reply (below), `OK` or `REFUSED`.
//! 4. Then any number of requests, each a kind byte and a 32-byte BLAKE3
//!    hash:
//!    * `GET`: answered by `OK` with the block's length (big-endian `u64`)
//!      and its descriptor attached, or `NOT_FOUND` / `REFUSED` / `FAILED`
//!      with a message;
//!    * `PUT`, followed by the block's length (big-endian `u64`), with a
//!      memfd attached whose first bytes are the block: answered by `OK`
//!      once the block is stored as `PutBlock` would store it, or by an
//!      error with a message. The client must not change the memfd before
//!      the answer; the server checks the bytes it copied, not the memfd.
//!
//! A reply is one byte of code, a big-endian `u16` body length and the
//! body. The descriptor travels with the reply's first byte. The client
//! checks the bytes it reads against the hash: a descriptor is a shortcut
//! to the bytes, never a reason to trust them.

use std::alloc::{dealloc, Layout};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use bytes::Bytes;

pub const GREETING: &[u8; 8] = b"svolblk1";
pub const INSTANCE_LEN: usize = 16;
pub const HASH_LEN: usize = 32;
/// Longest token the server reads.
pub const MAX_TOKEN: usize = 4096;

pub const GET: u8 = b'G';
pub const PUT: u8 = b'P';

pub const OK: u8 = 0;
pub const NOT_FOUND: u8 = 1;
pub const REFUSED: u8 = 2;
pub const FAILED: u8 = 3;

/// One answer of the server.
#[derive(Debug)]
pub struct Reply {
    pub code: u8,
    pub body: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

impl Reply {
    /// The body read as text, for errors.
    pub fn message(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request of the client.
#[derive(Debug)]
pub struct Request {
    pub kind: u8,
    pub hash: [u8; HASH_LEN],
    /// The block's length (`PUT`).
    pub len: u64,
    pub fd: Option<OwnedFd>,
}

/// Sends a `GET`, or a `PUT` of the first `len` bytes of memfd `fd`.
pub fn send_request(
    s: &UnixStream,
    hash: &[u8; HASH_LEN],
    put: Option<(u64, BorrowedFd<'_>)>,
) -> io::Result<()> {
    let mut frame = Vec::with_capacity(1 + HASH_LEN + 8);
    frame.push(if put.is_some() { PUT } else { GET });
    frame.extend_from_slice(hash);
    let sent = match put {
        None => 0,
        Some((len, fd)) => {
            frame.extend_from_slice(&len.to_be_bytes());
            send_with_fd(s, &frame, fd)?
        }
    };
    (&*s).write_all(&frame[sent..])
}

/// Reads one request, and the descriptor that came with it.
pub fn recv_request(s: &UnixStream) -> io::Result<Request> {
    let mut head = [0u8; 1 + HASH_LEN];
    let (got, fd) = recv_with_fd(s, &mut head)?;
    if got == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    (&*s).read_exact(&mut head[got..])?;
    let mut hash = [0u8; HASH_LEN];
    hash.copy_from_slice(&head[1..]);
    let len = match head[0] {
        GET => 0,
        PUT => {
            let mut l = [0u8; 8];
            (&*s).read_exact(&mut l)?;
            u64::from_be_bytes(l)
        }
        k => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown request kind {k}"),
            ))
        }
    };
    Ok(Request {
        kind: head[0],
        hash,
        len,
        fd,
    })
}

/// Sends a reply, with `fd` attached if given.
pub fn send_reply(
    s: &UnixStream,
    code: u8,
    body: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let len = u16::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "reply body too long"))?;
    let mut frame = Vec::with_capacity(3 + body.len());
    frame.push(code);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    let sent = match fd {
        None => 0,
        Some(fd) => send_with_fd(s, &frame, fd)?,
    };
    (&*s).write_all(&frame[sent..])
}

/// `sendmsg` of (a first part of) `data` with one descriptor attached:
/// how many bytes went.
fn send_with_fd(s: &UnixStream, data: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    let raw = fd.as_raw_fd();
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the
    // sendmsg call, and the control buffer has room for one descriptor.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the descriptor"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), raw);
        loop {
            let n = libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Reads one reply, and the descriptor that came with it.
pub fn recv_reply(s: &UnixStream) -> io::Result<Reply> {
    let mut head = [0u8; 3];
    let (got, fd) = recv_with_fd(s, &mut head)?;
    if got == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    (&*s).read_exact(&mut head[got..])?;
    let len = u16::from_be_bytes([head[1], head[2]]) as usize;
    let mut body = vec![0u8; len];
    (&*s).read_exact(&mut body)?;
    Ok(Reply {
        code: head[0],
        body,
        fd,
    })
}

/// `recvmsg` into `buf`: bytes read, and a descriptor if one came along
/// (any further ones are closed).
fn recv_with_fd(s: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    // Room for a few descriptors: a misbehaving peer's extras are closed,
    // not leaked or left to truncate the message.
    const MAX_FDS: u32 = 4;
    // SAFETY: CMSG_SPACE is a pure computation.
    let space =
        unsafe { libc::CMSG_SPACE(MAX_FDS * std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as in send_with_fd; the kernel writes at most iov_len bytes
    // into buf and at most msg_controllen into control, and every
    // descriptor it hands over is owned by exactly one OwnedFd below.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = loop {
            let n = libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut fd = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    let owned = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::other("descriptors were cut off"));
        }
        Ok((n, fd))
    }
}

/// Client side of step 1: the instance id the server greets with.
pub fn read_greeting(s: &UnixStream) -> io::Result<[u8; INSTANCE_LEN]> {
    let mut g = [0u8; GREETING.len() + INSTANCE_LEN];
    (&*s).read_exact(&mut g)?;
    if &g[..GREETING.len()] != GREETING {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an svol block channel",
        ));
    }
    let mut id = [0u8; INSTANCE_LEN];
    id.copy_from_slice(&g[GREETING.len()..]);
    Ok(id)
}

pub fn write_greeting(s: &UnixStream, instance: &[u8; INSTANCE_LEN]) -> io::Result<()> {
    let mut g = GREETING.to_vec();
    g.extend_from_slice(instance);
    (&*s).write_all(&g)
}

pub fn write_token(s: &UnixStream, token: &str) -> io::Result<()> {
    let len = u16::try_from(token.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_TOKEN)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "token too long"))?;
    let mut m = len.to_be_bytes().to_vec();
    m.extend_from_slice(token.as_bytes());
    (&*s).write_all(&m)
}

/// Server side of step 2.
pub fn read_token(s: &UnixStream) -> io::Result<String> {
    let mut len = [0u8; 2];
    (&*s).read_exact(&mut len)?;
    let len = u16::from_be_bytes(len) as usize;
    if len > MAX_TOKEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "token too long"));
    }
    let mut t = vec![0u8; len];
    (&*s).read_exact(&mut t)?;
    String::from_utf8(t).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "token not UTF-8"))
}

/// Alignment direct I/O needs on every common device.
const ALIGN: usize = 4096;

/// A heap buffer aligned for direct I/O, handed out as `Bytes`.
struct Aligned {
    ptr: *mut u8,
    layout: Layout,
    len: usize,
}

// SAFETY: plain owned memory, like a Vec<u8>.
unsafe impl Send for Aligned {}
unsafe impl Sync for Aligned {}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first len bytes were written by the kernel (see
        // read_whole), inside the allocation.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        if self.layout.size() == SPARE_CAP {
            let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
            if spare.len() < SPARE_MAX {
                spare.push(Spare(self.ptr));
                return;
            }
        }
        // SAFETY: allocated with this layout in read_whole.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Freed whole-block buffers, kept for the next read. An aligned
/// allocation asks glibc for more than its size (to cut the alignment
/// out of it), so the hole a freed 4 MiB buffer leaves, once small
/// allocations sit beside it, never fits the next one: without reuse a
/// mount reading 1 GiB through the channel grew to 1.3 GB with a 16 MiB
/// block cache. With it, buffers go round between the cache and new reads.
static SPARE: Mutex<Vec<Spare>> = Mutex::new(Vec::new());
/// The size of the buffers kept: a whole block, what nearly every read is.
const SPARE_CAP: usize = 4 << 20;
/// At most this many are kept (32 MiB).
const SPARE_MAX: usize = 8;

struct Spare(*mut u8);
// SAFETY: an allocation nobody else points to, owned by the pool.
unsafe impl Send for Spare {}

/// A buffer of `layout` (aligned to `ALIGN`): a spare one when it is a
/// whole block's, else a new allocation.
fn alloc_aligned(layout: Layout) -> *mut u8 {
    if layout.size() == SPARE_CAP {
        if let Some(Spare(ptr)) = SPARE.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return ptr;
        }
    }
    // SAFETY: the layout has a non-zero size (callers round up to ALIGN).
    unsafe { std::alloc::alloc(layout) }
}

/// All `len` bytes of `f` (at most `MAX_MESSAGE`) in a buffer aligned for
/// direct I/O; `f` may itself be open for direct I/O (the server opens
/// block files so, to keep them out of the page cache). The buffer's
/// alignment also lets the server write it to a block file without
/// another copy.
pub fn read_whole(f: &File, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= crate::MAX_MESSAGE)
        .ok_or_else(|| io::Error::other("block too large"))?;
    let cap = len.div_ceil(ALIGN).max(1) * ALIGN;
    let layout = Layout::from_size_align(cap, ALIGN).map_err(io::Error::other)?;
    let ptr = alloc_aligned(layout);
    if ptr.is_null() {
        return Err(io::Error::other("out of memory"));
    }
    let mut buf = Aligned {
        ptr,
        layout,
        len: 0,
    };
    while buf.len < len {
        // Whole aligned pieces at aligned offsets: the tail past the end
        // of the file is simply not filled.
        // SAFETY: ptr + len .. ptr + cap lies within the allocation.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                buf.ptr.add(buf.len).cast(),
                cap - buf.len,
                buf.len as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "block file shorter than told",
            ));
        }
        buf.len += n as usize;
    }
    buf.len = len;
    Ok(Bytes::from_owner(buf))
}

/// Whether `fd` is a memfd (a file that takes seals): what a `PUT` must
/// attach, so that reading it can never block on a pipe, a socket or
/// another file system.
pub fn is_memfd(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: fcntl on a descriptor the caller holds.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) >= 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_bodies_and_descriptors() {
        let (a, b) = UnixStream::pair().expect("pair");
        let file = tempfile_with(b"block bytes");
        send_reply(
            &a,
            OK,
            &11u64.to_be_bytes(),
            Some(std::os::fd::AsFd::as_fd(&file)),
        )
        .expect("send");
        send_reply(&a, NOT_FOUND, b"no such block", None).expect("send");
        let r = recv_reply(&b).expect("recv");
        assert_eq!(r.code, OK);
        assert_eq!(r.body, 11u64.to_be_bytes());
        let mut got = String::new();
        std::fs::File::from(r.fd.expect("a descriptor came"))
            .read_to_string(&mut got)
            .expect("read through it");
        assert_eq!(got, "block bytes");
        let r = recv_reply(&b).expect("recv");
        assert_eq!((r.code, r.message().as_str()), (NOT_FOUND, "no such block"));
        assert!(r.fd.is_none());
        drop(a);
        assert!(recv_reply(&b).is_err(), "a closed channel is an error");
    }

    #[test]
    fn greeting_and_token_round_trip_and_strangers_are_refused() {
        let (a, b) = UnixStream::pair().expect("pair");
        write_greeting(&a, &[7; INSTANCE_LEN]).expect("greet");
        assert_eq!(read_greeting(&b).expect("read"), [7; INSTANCE_LEN]);
        write_token(&b, "svol_abc").expect("token");
        assert_eq!(read_token(&a).expect("read"), "svol_abc");
        (&a).write_all(&[0u8; 24]).expect("write");
        assert!(read_greeting(&b).is_err(), "not our greeting");
        (&b).write_all(&u16::MAX.to_be_bytes()).expect("write");
        assert!(read_token(&a).is_err(), "an oversized token is refused");
    }

    fn tempfile_with(bytes: &[u8]) -> std::fs::File {
        let p = std::env::temp_dir().join(format!("svol-blockchan-{}", std::process::id()));
        std::fs::write(&p, bytes).expect("write");
        let f = std::fs::File::open(&p).expect("open");
        let _ = std::fs::remove_file(&p);
        f
    }

    #[test]
    fn files_of_any_length_are_read_whole_with_and_without_direct_io() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::temp_dir().join(format!("svol-sdk-chan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for len in [0usize, 1, 4095, 4096, 4097, 1 << 20, (4 << 20) - 3] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let p = dir.join(format!("b{len}"));
            std::fs::write(&p, &data).expect("write");
            let plain = File::open(&p).expect("open");
            assert!(read_whole(&plain, len as u64).expect("read")[..] == data[..]);
            if let Ok(direct) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&p)
            {
                let got = read_whole(&direct, len as u64).expect("direct read");
                assert!(got[..] == data[..], "length {len}");
            }
            assert!(
                read_whole(&plain, len as u64 + 1).is_err(),
                "a file shorter than told is an error"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
