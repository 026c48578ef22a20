use std::fmt;

use crate::BlockError;

/// BLAKE3 hash naming a block.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    pub fn from_slice(b: &[u8]) -> Result<Self, BlockError> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| BlockError::InvalidHash(format!("{} bytes, want 32", b.len())))?;
        Ok(Self(arr))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The hash written as 64 hex digits (a block's file or object name).
    pub fn from_hex(s: &str) -> Option<Self> {
        let b = hex::decode(s).ok()?;
        Self::from_slice(&b).ok()
    }
}

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex()[..16])
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({self})")
    }
}

/// Where a block lives: its owner (the workspace that uploaded it) and its
/// hash. Identical bytes of two owners are two blocks, so a block can be
/// deduplicated only within its owner and never read through another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    pub owner: u64,
    pub hash: BlockHash,
}

impl BlockKey {
    pub fn new(owner: u64, hash: BlockHash) -> Self {
        Self { owner, hash }
    }

    /// The key a block's name says, `w<owner>/ab/cdef…` (both stores name
    /// blocks so).
    pub fn from_name(name: &str) -> Option<Self> {
        let mut parts = name.split('/');
        let owner = parts.next()?.strip_prefix('w')?.parse().ok()?;
        let (a, b) = (parts.next()?, parts.next()?);
        if parts.next().is_some() || a.len() != 2 {
            return None;
        }
        Some(Self::new(owner, BlockHash::from_hex(&format!("{a}{b}"))?))
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.hash)
    }
}

impl fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockKey({self})")
    }
}
