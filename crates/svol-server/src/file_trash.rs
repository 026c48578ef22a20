//! Volumes' file trash over the wire: the retention setting, listing,
//! restoring and purging removed files, and the leader's purge of what
//! outlived its retention. Every call names its volume, so `caller`
//! confines it to the caller's workspace.

use svol_meta as m;
use svol_proto as p;
use tonic::{Request, Status};

use crate::service::State;

/// The longest retention (as for the server's volume trash): a year.
const MAX_RETENTION_SECS: u64 = 366 * 24 * 3600;

impl State {
    pub(crate) async fn do_set_file_trash(
        &self,
        req: Request<p::FileTrashRequest>,
    ) -> Result<p::VolumeInfo, Status> {
        let c = self.caller(&req, "").await?;
        let r = req.into_inner();
        if r.retention_seconds > MAX_RETENTION_SECS {
            return Err(Status::invalid_argument(format!(
                "a file trash retention of {} s is past the limit of 366 days",
                r.retention_seconds
            )));
        }
        let keep_ms = (r.retention_seconds * 1000) as i64;
        let v = self
            .meta(move |m| m.set_file_trash(c.ws, &r.volume, keep_ms))
            .await?;
        self.volume_info(v).await
    }

    /// The selection's volume (checked against the caller's workspace)
    /// and what it picks, as of the server's clock.
    async fn selection<T>(
        &self,
        req: &Request<T>,
        sel: &p::DeletedFilesSelection,
    ) -> Result<(crate::auth::Caller, Picked), Status> {
        let c = self.caller(req, &sel.volume).await?;
        // What mounts removed ahead of the server is listed, restored or
        // purged too: their holds in the volume land first.
        self.settle(&c, None).await;
        let path = relative(&sel.path, "path")?;
        let since_ms = match sel.since_seconds {
            0 => i64::MIN,
            s => self
                .clock
                .now_ms()
                .saturating_sub(s.saturating_mul(1000).min(i64::MAX as u64) as i64),
        };
        let picked = Picked {
            path,
            since_ms,
            id: (sel.id != 0).then_some(sel.id),
        };
        Ok((c, picked))
    }

    pub(crate) async fn do_list_deleted_files(
        &self,
        req: Request<p::DeletedFilesSelection>,
    ) -> Result<p::ListDeletedFilesResponse, Status> {
        let (c, sel) = self.selection(&req, req.get_ref()).await?;
        let vol = c.vol;
        let files = self
            .meta(move |m| m.list_deleted_files(vol, &sel.as_meta()))
            .await?;
        Ok(p::ListDeletedFilesResponse {
            files: files
                .into_iter()
                .map(|f| p::DeletedFile {
                    id: f.id,
                    path: f.path.into(),
                    kind: crate::convert::kind(f.kind) as i32,
                    size: f.size,
                    deleted_unix_ms: f.deleted_ms,
                    purge_unix_ms: f.purge_ms,
                })
                .collect(),
        })
    }

    pub(crate) async fn do_restore_deleted_files(
        &self,
        req: Request<p::RestoreDeletedFilesRequest>,
    ) -> Result<p::RestoreDeletedFilesResponse, Status> {
        let r = req.get_ref();
        let sel = r.selection.clone().unwrap_or_default();
        let (c, picked) = self.selection(&req, &sel).await?;
        let to = if r.to.is_empty() {
            None
        } else {
            let to = relative(&r.to, "restore to")?;
            if to.is_empty() {
                return Err(Status::invalid_argument(
                    "restore to: the volume's root is not a file's path",
                ));
            }
            Some(to)
        };
        let (vol, cx_now) = (c.vol, self.clock.now());
        let out = self
            .meta(move |m| {
                m.restore_deleted_files(vol, &picked.as_meta(), to.as_deref(), &m::Cx::at(cx_now))
            })
            .await?;
        self.changed(&c, &out.changes).await;
        Ok(p::RestoreDeletedFilesResponse {
            restored: out
                .value
                .into_iter()
                .map(|(from, to)| p::RestoredFile {
                    from: from.into(),
                    to: to.into(),
                })
                .collect(),
        })
    }

    pub(crate) async fn do_purge_deleted_files(
        &self,
        req: Request<p::DeletedFilesSelection>,
    ) -> Result<p::PurgeDeletedFilesResponse, Status> {
        let (c, sel) = self.selection(&req, req.get_ref()).await?;
        let vol = c.vol;
        let out = self
            .meta(move |m| m.purge_deleted_files(vol, &sel.as_meta()))
            .await?;
        self.reap(out.changes.freed);
        Ok(p::PurgeDeletedFilesResponse {
            purged: out.value as u64,
        })
    }

    /// Drops removed files whose retention ended (on the leader), a batch
    /// per call.
    pub(crate) async fn purge_expired_files(&self) {
        let now = self.clock.now_ms();
        match self.meta(move |m| m.purge_expired_files(now)).await {
            Ok(out) => {
                if out.value > 0 {
                    tracing::info!(
                        files = out.value,
                        "retention ended; dropped from file trash"
                    );
                }
                self.reap(out.changes.freed);
            }
            Err(e) => tracing::warn!("purging file trash: {e}"),
        }
    }
}

/// A path in a volume as the trash stores it: from the root, no leading
/// or doubled slash; `.`, `..` and NUL are refused (a trash path names
/// where a file was, never somewhere relative to it).
fn relative(path: &[u8], what: &str) -> Result<Vec<u8>, Status> {
    let mut parts = Vec::new();
    for part in path.split(|b| *b == b'/').filter(|p| !p.is_empty()) {
        if part == b"." || part == b".." || part.contains(&0) {
            return Err(Status::invalid_argument(format!(
                "{what}: {:?} may not contain `.`, `..` or NUL",
                String::from_utf8_lossy(path)
            )));
        }
        if part.len() > m::NAME_MAX {
            return Err(Status::invalid_argument(format!(
                "{what}: a name is longer than {} bytes",
                m::NAME_MAX
            )));
        }
        parts.push(part);
    }
    Ok(parts.join(&b'/'))
}

/// An owned `DeletedSelection`, to move into a metadata call.
struct Picked {
    path: Vec<u8>,
    since_ms: i64,
    id: Option<i64>,
}

impl Picked {
    fn as_meta(&self) -> m::DeletedSelection<'_> {
        m::DeletedSelection {
            path: &self.path,
            since_ms: self.since_ms,
            id: self.id,
        }
    }
}
