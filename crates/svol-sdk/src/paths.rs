//! Path-level file operations on a volume (what the CLI and SDK users call):
//! list, read, write, remove, copy, and batch uploads of local trees. Every
//! path is checked first: no `..`, no NUL, components of at most 255 bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{
    check_remote_path, Attr, Chunk, ClientError, DirEntry, DownloadOptions, FileKind, FsErrno,
    NewNode, Progress, Result, Volume,
};

/// One directory entry as [`Volume::listdir`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub attr: Attr,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.attr.is_dir()
    }

    /// "file", "dir", "symlink", …
    pub fn kind(&self) -> &'static str {
        self.attr.kind.name()
    }
}

fn basename(path: &str) -> Result<String> {
    let b = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if b.is_empty() || b == "." {
        return Err(ClientError::InvalidArgument(format!(
            "path {path:?} has no file name"
        )));
    }
    Ok(b.to_string())
}

impl Volume {
    fn at(&self, path: &str) -> String {
        format!("{}:{path}", self.info().name)
    }

    fn fs_err(&self, k: FsErrno, path: &str, msg: &str) -> ClientError {
        ClientError::Fs(k, format!("{}: {msg}", self.at(path)))
    }

    /// The attributes of the node at `path` (symlinks not followed).
    pub async fn stat(&self, path: &str) -> Result<Attr> {
        check_remote_path(path)?;
        self.resolve(path)
            .await
            .map_err(|e| e.context(&self.at(path)))
    }

    /// The parent directory's inode and the last component of `path`.
    pub async fn split(&self, path: &str) -> Result<(u64, String)> {
        check_remote_path(path)?;
        let trimmed = path.trim_end_matches('/');
        let (dir, base) = match trimmed.rfind('/') {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => ("", trimmed),
        };
        if base.is_empty() || base == "." {
            return Err(ClientError::InvalidArgument(format!(
                "path {path:?} names the volume root"
            )));
        }
        let parent = self.stat(dir).await?;
        Ok((parent.ino, base.to_string()))
    }

    /// `mkdir -p` inside the volume; returns the directory's inode.
    pub async fn mkdirs(&self, path: &str) -> Result<u64> {
        check_remote_path(path)?;
        let mut cur = self.root();
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            cur = match self.lookup(cur, part.as_bytes()).await {
                Ok(a) if a.is_dir() => a.ino,
                Ok(_) => {
                    return Err(self.fs_err(
                        FsErrno::NotDirectory,
                        path,
                        &format!("{part} is not a directory"),
                    ))
                }
                Err(ClientError::NotFound(_)) => {
                    let r = NewNode {
                        parent: cur,
                        name: Bytes::copy_from_slice(part.as_bytes()),
                        kind: FileKind::Directory,
                        mode: 0o755,
                        exclusive: false,
                        ..Default::default()
                    };
                    match self.create(r).await {
                        Ok(a) => a.ino,
                        // Another client made it first.
                        Err(ClientError::AlreadyExists(_)) => {
                            self.lookup(cur, part.as_bytes()).await?.ino
                        }
                        Err(e) => return Err(e.context(&self.at(path))),
                    }
                }
                Err(e) => return Err(e.context(&self.at(path))),
            };
        }
        Ok(cur)
    }

    /// The entries of directory `path` (or the one entry, if a file).
    pub async fn listdir(&self, path: &str) -> Result<Vec<Entry>> {
        let a = self.stat(path).await?;
        if !a.is_dir() {
            let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            return Ok(vec![Entry {
                name: name.to_string(),
                attr: a,
            }]);
        }
        Ok(self
            .readdir_all(a.ino)
            .await?
            .into_iter()
            .map(|e| Entry {
                name: String::from_utf8_lossy(&e.name).into_owned(),
                attr: e.attr,
            })
            .collect())
    }

    /// The whole contents of file `path`.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let a = self.stat(path).await?;
        if a.is_dir() {
            return Err(self.fs_err(FsErrno::IsDirectory, path, "is a directory"));
        }
        let mut out = Vec::with_capacity(a.size as usize);
        self.get_file(a.ino, &mut out, &None).await?;
        Ok(out)
    }

    /// The size of file `path` and its chunks (see [`Volume::chunks_of`]):
    /// a reader fetches them one at a time, in bounded memory.
    pub async fn read_plan(&self, path: &str) -> Result<(u64, Vec<Option<Chunk>>)> {
        let a = self.stat(path).await?;
        if a.is_dir() {
            return Err(self.fs_err(FsErrno::IsDirectory, path, "is a directory"));
        }
        self.chunks_of(a.ino)
            .await
            .map_err(|e| e.context(&self.at(path)))
    }

    /// Writes `data` as file `path`, creating parent directories and
    /// replacing an existing file atomically (readers see old or new).
    pub async fn write_file(&self, path: &str, data: impl Into<Bytes>) -> Result<Attr> {
        let (dir, base) = self.split_new(path)?;
        let parent = self.mkdirs(dir).await?;
        self.put_bytes(data.into(), parent, base.as_bytes(), true)
            .await
            .map_err(|e| e.context(&self.at(path)))
    }

    fn split_new<'a>(&self, path: &'a str) -> Result<(&'a str, &'a str)> {
        check_remote_path(path)?;
        let trimmed = path.trim_end_matches('/');
        let (dir, base) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
        if base.is_empty() || base == "." {
            return Err(ClientError::InvalidArgument(format!(
                "path {path:?} has no file name"
            )));
        }
        Ok((dir, base))
    }

    /// Removes a file, a symlink, or (with `recursive`) a directory tree.
    pub async fn remove_file(&self, path: &str, recursive: bool) -> Result<()> {
        let (parent, base) = self.split(path).await?;
        let a = self
            .lookup(parent, base.as_bytes())
            .await
            .map_err(|e| e.context(&self.at(path)))?;
        if a.is_dir() {
            if !recursive {
                return Err(self.fs_err(FsErrno::IsDirectory, path, "is a directory (use -r)"));
            }
            self.remove_tree(a.ino).await?;
        }
        self.unlink(parent, base.as_bytes(), a.is_dir())
            .await
            .map_err(|e| e.context(&self.at(path)))?;
        Ok(())
    }

    async fn remove_tree(&self, dir: u64) -> Result<()> {
        for e in self.readdir_all(dir).await? {
            let a = e.attr;
            if a.is_dir() {
                Box::pin(self.remove_tree(a.ino)).await?;
            }
            self.unlink(dir, &e.name, a.is_dir()).await?;
        }
        Ok(())
    }

    /// Copies files (or, with `recursive`, trees) within the volume on the
    /// server: no data moves, blocks are shared. With several sources `dst`
    /// must be a directory.
    pub async fn copy_files(&self, srcs: &[&str], dst: &str, recursive: bool) -> Result<()> {
        check_remote_path(dst)?;
        let dst_dir = self.resolve(dst).await.ok().filter(Attr::is_dir);
        if srcs.len() > 1 && dst_dir.is_none() {
            return Err(self.fs_err(FsErrno::NotDirectory, dst, "is not a directory"));
        }
        for src in srcs {
            let sa = self.stat(src).await?;
            if sa.is_dir() && !recursive {
                return Err(self.fs_err(FsErrno::IsDirectory, src, "is a directory (use -r)"));
            }
            let (parent, base) = match &dst_dir {
                Some(d) => (d.ino, basename(src)?),
                None => self.split(dst).await?,
            };
            self.copy(sa.ino, parent, base.as_bytes())
                .await
                .map_err(|e| e.context(&self.at(dst)))?;
        }
        Ok(())
    }

    /// Starts a batch upload; nothing is sent before [`BatchUpload::commit`].
    pub fn batch_upload(&self, force: bool) -> BatchUpload<'_> {
        BatchUpload {
            vol: self,
            force,
            items: Vec::new(),
            progress: None,
        }
    }

    /// Downloads file or tree `remote` to local path `local`, never
    /// writing outside it (see `download.rs`); setuid, setgid and sticky
    /// bits are dropped.
    pub async fn download(
        &self,
        remote: &str,
        local: &Path,
        progress: &Option<Progress>,
    ) -> Result<()> {
        self.download_with(remote, local, DownloadOptions::default(), progress)
            .await
    }

    pub async fn download_with(
        &self,
        remote: &str,
        local: &Path,
        opts: DownloadOptions,
        progress: &Option<Progress>,
    ) -> Result<()> {
        let a = self.stat(remote).await?;
        crate::download::download(self, &a, local, opts, progress).await
    }
}

impl crate::download::Source for Volume {
    fn list<'a>(
        &'a self,
        dir: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<DirEntry>>> + Send + 'a>>
    {
        Box::pin(self.readdir_all(dir))
    }

    fn link_target<'a>(
        &'a self,
        ino: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>>> + Send + 'a>> {
        Box::pin(async move { Ok(self.readlink(ino).await?.to_vec()) })
    }

    fn contents<'a>(
        &'a self,
        ino: u64,
        out: &'a mut (dyn Write + Send),
        progress: &'a Option<Progress>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(self.get_file(ino, out, progress))
    }
}

enum Item {
    Local(PathBuf, String),
    Data(Bytes, String),
}

/// Files and trees to upload together. Each file is cut into 4 MiB blocks
/// and the server is asked which of them it lacks before any is sent, so
/// data already in the workspace (another volume, an earlier upload) costs
/// no transfer. Every file appears whole under its name or not at all.
pub struct BatchUpload<'a> {
    vol: &'a Volume,
    force: bool,
    items: Vec<Item>,
    progress: Option<Progress>,
}

impl BatchUpload<'_> {
    /// A local file, symlink or directory tree, stored at `remote`.
    pub fn put_file(mut self, local: impl Into<PathBuf>, remote: &str) -> Self {
        self.items
            .push(Item::Local(local.into(), remote.to_string()));
        self
    }

    /// Bytes stored as file `remote`.
    pub fn put_data(mut self, data: impl Into<Bytes>, remote: &str) -> Self {
        self.items.push(Item::Data(data.into(), remote.to_string()));
        self
    }

    pub fn progress(mut self, p: Progress) -> Self {
        self.progress = Some(p);
        self
    }

    /// Uploads everything, in order; stops at the first error.
    pub async fn commit(self) -> Result<()> {
        for item in &self.items {
            match item {
                Item::Local(local, remote) => self.put_path(local, remote).await?,
                Item::Data(data, remote) => {
                    let (dir, base) = self.vol.split_new(remote)?;
                    let parent = self.vol.mkdirs(dir).await?;
                    self.vol
                        .put_bytes(data.clone(), parent, base.as_bytes(), self.force)
                        .await
                        .map_err(|e| e.context(&self.vol.at(remote)))?;
                }
            }
        }
        Ok(())
    }

    async fn put_path(&self, local: &Path, remote: &str) -> Result<()> {
        check_remote_path(remote)?;
        let io = |e: std::io::Error| ClientError::Io(format!("{}: {e}", local.display()));
        let meta = std::fs::symlink_metadata(local).map_err(io)?;
        if meta.is_dir() {
            self.vol.mkdirs(remote).await?;
            let mut entries: Vec<_> = std::fs::read_dir(local).map_err(io)?.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                let sub = format!("{}/{}", remote.trim_end_matches('/'), name);
                Box::pin(self.put_path(&e.path(), &sub)).await?;
            }
            return Ok(());
        }
        let (dir, base) = self.vol.split_new(remote)?;
        let parent = self.vol.mkdirs(dir).await?;
        let at = self.vol.at(remote);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(local).map_err(io)?;
            use std::os::unix::ffi::OsStrExt;
            let r = NewNode {
                parent,
                name: Bytes::copy_from_slice(base.as_bytes()),
                kind: FileKind::Symlink,
                mode: 0o777,
                symlink_target: Bytes::copy_from_slice(target.as_os_str().as_bytes()),
                exclusive: true,
                ..Default::default()
            };
            self.vol.create(r).await.map_err(|e| e.context(&at))?;
            return Ok(());
        }
        if !meta.is_file() {
            return Err(ClientError::InvalidArgument(format!(
                "{}: not a regular file, directory or symlink",
                local.display()
            )));
        }
        self.vol
            .put_file(local, parent, base.as_bytes(), self.force, &self.progress)
            .await
            .map_err(|e| e.context(&at))?;
        Ok(())
    }
}
