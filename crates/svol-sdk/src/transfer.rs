//! Whole-file transfers between local disk and a volume. Files are cut into
//! the same 4 MiB chunks the mount uses, so putting identical data twice
//! sends no block twice: the server is asked which blocks it lacks first.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::{
    Attr, Chunk, ClientError, FileKind, NewNode, Result, SetAttr, TimeSet, Timespec, Volume,
    CHUNK_SIZE, INLINE_MAX, RENAME_NOREPLACE,
};

/// Called with the number of bytes just transferred.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

const PARALLEL: usize = 8;

/// What a new file gets besides its bytes.
struct Source {
    label: String,
    mode: u32,
    uid: u32,
    gid: u32,
    len: u64,
    mtime: Option<Timespec>,
}

/// Splits data into chunks and hashes each (small chunks stay inline).
pub fn hash_chunks(data: &[u8], first_index: u64) -> Vec<(Chunk, Option<Bytes>)> {
    data.chunks(CHUNK_SIZE as usize)
        .enumerate()
        .map(|(i, c)| chunk_of(first_index + i as u64, Bytes::copy_from_slice(c)))
        .collect()
}

/// Describes one chunk; returns the block bytes to upload, if any.
pub(crate) fn chunk_of(index: u64, data: Bytes) -> (Chunk, Option<Bytes>) {
    let len = data.len() as u32;
    if data.len() <= INLINE_MAX {
        return (
            Chunk {
                index,
                len,
                hash: Bytes::new(),
                inline_data: data,
            },
            None,
        );
    }
    let hash = Bytes::copy_from_slice(blake3::hash(&data).as_bytes());
    (
        Chunk {
            index,
            len,
            hash,
            inline_data: Bytes::new(),
        },
        Some(data),
    )
}

fn tmp_name(name: &[u8]) -> Vec<u8> {
    let r: u64 = rand_u64();
    let mut v = b".svol-put-".to_vec();
    v.extend_from_slice(format!("{r:016x}-").as_bytes());
    v.extend_from_slice(&name[..name.len().min(200)]);
    v
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let h = blake3::hash(&[t.to_le_bytes(), (std::process::id() as u64).to_le_bytes()].concat());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

impl Volume {
    /// Uploads the blocks of `chunks` the server lacks, in parallel.
    pub async fn upload_missing(
        &self,
        blocks: Vec<(Bytes, Bytes)>,
        progress: &Option<Progress>,
    ) -> Result<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        let missing = self
            .missing_blocks(blocks.iter().map(|(h, _)| h.clone()).collect())
            .await?;
        let missing: std::collections::HashSet<Bytes> = missing.into_iter().collect();
        futures::stream::iter(blocks.into_iter().map(|(h, d)| {
            let need = missing.contains(&h);
            let len = d.len() as u64;
            async move {
                if need {
                    self.put_block(h, d).await?;
                }
                if let Some(p) = progress {
                    p(len);
                }
                Ok::<_, ClientError>(())
            }
        }))
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(())
    }

    /// Stores a local file as `parent/name`: written under a temporary name,
    /// then renamed into place, so readers never see half a file. Refuses to
    /// replace an existing name unless `force`.
    pub async fn put_file(
        &self,
        local: &Path,
        parent: u64,
        name: &[u8],
        force: bool,
        progress: &Option<Progress>,
    ) -> Result<Attr> {
        let meta = std::fs::metadata(local)
            .map_err(|e| ClientError::Io(format!("{}: {e}", local.display())))?;
        use std::os::unix::fs::MetadataExt;
        let src = Source {
            label: local.display().to_string(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            len: meta.len(),
            mtime: Some(Timespec {
                sec: meta.mtime(),
                nsec: meta.mtime_nsec() as u32,
            }),
        };
        let mut f = std::fs::File::open(local)
            .map_err(|e| ClientError::Io(format!("{}: {e}", local.display())))?;
        self.put_reader(&src, &mut f, parent, name, force, progress)
            .await
    }

    /// Stores `data` as `parent/name` (mode 0644), like [`Volume::put_file`].
    pub async fn put_bytes(
        &self,
        data: Bytes,
        parent: u64,
        name: &[u8],
        force: bool,
    ) -> Result<Attr> {
        let src = Source {
            label: String::from_utf8_lossy(name).into_owned(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            len: data.len() as u64,
            mtime: None,
        };
        let mut r = std::io::Cursor::new(data);
        self.put_reader(&src, &mut r, parent, name, force, &None)
            .await
    }

    async fn put_reader(
        &self,
        src: &Source,
        input: &mut (dyn Read + Send),
        parent: u64,
        name: &[u8],
        force: bool,
        progress: &Option<Progress>,
    ) -> Result<Attr> {
        if !force && self.lookup(parent, name).await.is_ok() {
            return Err(ClientError::AlreadyExists(format!(
                "{} already exists (use --force to overwrite)",
                String::from_utf8_lossy(name)
            )));
        }
        let tmp = tmp_name(name);
        let create = NewNode {
            parent,
            name: Bytes::from(tmp.clone()),
            kind: FileKind::Regular,
            mode: src.mode,
            uid: src.uid,
            gid: src.gid,
            exclusive: true,
            ..Default::default()
        };
        let a = self.create(create).await?;
        let res = self.fill(&src.label, input, a.ino, src.len, progress).await;
        let res = match res {
            Ok(()) => {
                if let Some(mtime) = src.mtime {
                    let set = SetAttr {
                        mtime: Some(TimeSet::At(mtime)),
                        ..Default::default()
                    };
                    self.setattr(a.ino, set).await?;
                }
                let flags = if force { 0 } else { RENAME_NOREPLACE };
                self.rename(parent, &tmp, parent, name, flags).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            let _ = self.unlink(parent, &tmp, false).await;
            return Err(e);
        }
        self.getattr(a.ino).await
    }

    async fn fill(
        &self,
        label: &str,
        f: &mut (dyn Read + Send),
        ino: u64,
        len: u64,
        progress: &Option<Progress>,
    ) -> Result<()> {
        let mut index = 0u64;
        let mut batch_chunks = Vec::new();
        let mut batch_blocks = Vec::new();
        loop {
            let mut buf = vec![0u8; CHUNK_SIZE as usize];
            let n = read_full(f, &mut buf).map_err(|e| ClientError::Io(format!("{label}: {e}")))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            let (c, block) = chunk_of(index, Bytes::from(buf));
            if let Some(b) = block {
                batch_blocks.push((c.hash.clone(), b));
            } else if let Some(p) = progress {
                p(n as u64);
            }
            batch_chunks.push(c);
            index += 1;
            if batch_blocks.len() >= 16 {
                self.upload_missing(std::mem::take(&mut batch_blocks), progress)
                    .await?;
            }
        }
        self.upload_missing(batch_blocks, progress).await?;
        let commit = crate::Commit {
            chunks: batch_chunks,
            write_end: len,
            durable: true,
            ..Default::default()
        };
        self.commit(ino, commit).await?;
        Ok(())
    }

    /// The size of file `ino` as of now and its chunks in order, `None`
    /// for a hole: what [`Volume::chunk_bytes`] turns into its contents.
    pub async fn chunks_of(&self, ino: u64) -> Result<(u64, Vec<Option<Chunk>>)> {
        let open = self.open(ino).await?;
        let size = open.attr.size;
        let mut chunks: std::collections::HashMap<u64, Chunk> =
            open.chunks.into_iter().map(|c| (c.index, c)).collect();
        let count = size.div_ceil(CHUNK_SIZE);
        Ok((size, (0..count).map(|i| chunks.remove(&i)).collect()))
    }

    /// Writes the contents of file `ino` to `out`.
    pub async fn get_file(
        &self,
        ino: u64,
        out: &mut (dyn Write + Send),
        progress: &Option<Progress>,
    ) -> Result<()> {
        let (size, chunks) = self.chunks_of(ino).await?;
        let mut stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| async move { self.chunk_bytes(c).await }),
        )
        .buffered(4);
        let mut i = 0u64;
        while let Some(data) = stream.next().await {
            let data = data?;
            let want = (size - i * CHUNK_SIZE).min(CHUNK_SIZE) as usize;
            let have = data.len().min(want);
            out.write_all(&data[..have])?;
            if have < want {
                out.write_all(&vec![0u8; want - have])?;
            }
            if let Some(p) = progress {
                p(want as u64);
            }
            i += 1;
        }
        out.flush()?;
        Ok(())
    }

    /// The bytes a chunk holds (up to its `len`).
    pub async fn chunk_bytes(&self, c: Option<Chunk>) -> Result<Bytes> {
        let Some(c) = c else { return Ok(Bytes::new()) };
        let data = if c.hash.is_empty() {
            c.inline_data
        } else {
            self.get_block(c.hash).await?
        };
        Ok(data.slice(..(c.len as usize).min(data.len())))
    }
}

fn read_full(f: &mut (dyn Read + Send), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
