//! svol's wire protocol: the gRPC service and messages every other crate
//! speaks, the constants both ends must agree on, and the framing of the
//! block channel (`blockchan`: blocks as file descriptors on one host).
//! It must not depend on any svol crate.

pub mod blockchan;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("svol.v1");
}

pub use v1::*;

/// Header carrying the caller's session id on file-system calls.
pub const SESSION_HEADER: &str = "svol-session";
/// Trailer/metadata key carrying the errno of a failed file-system call.
pub const ERRNO_HEADER: &str = "svol-errno";
/// Largest block the server accepts: files are cut into chunks of this size.
pub const CHUNK_SIZE: u64 = 4 << 20;
/// Chunks up to this size are stored inline in metadata, not as blocks.
pub const INLINE_MAX: usize = 64 << 10;
/// gRPC message limit: one block plus headroom.
pub const MAX_MESSAGE: usize = 16 << 20;
/// Inodes one open may peek at (`OpenRequest.peek`).
pub const MAX_PEEK: usize = 64;
/// Inline bytes one open returns for the inodes it peeked at.
pub const PEEK_BYTES: usize = 1 << 20;
/// Rename flags on the wire (same values as Linux).
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;
