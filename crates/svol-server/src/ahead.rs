//! Creates made ahead by a mount that holds their directory: granting
//! holds and inode numbers (`Hold`), landing the creates and what the
//! mount did to the new nodes since (`Apply`), and
//! recalling holds before anyone else looks in (`settle`). The rules of
//! holds are in `sessions/holds.rs`.

use svol_meta::{self as m, Ino};
use svol_proto as p;
use tonic::{Request, Status};

use crate::auth::Caller;
use crate::convert::{self, attr};
use crate::service::State;

/// Numbers one `Hold` may reserve.
const MAX_RESERVE: u32 = 4096;
/// Operations one `Apply` may carry (a bound on one transaction's work).
const MAX_APPLY: usize = 4096;
/// An operation's own time is taken if the mount's clock is this close to
/// the server's; else the server's (a mount with a wrong clock must not
/// date files years away).
const MAX_SKEW_MS: i64 = 60_000;

/// The time a mount gave an operation (its clock when the application
/// made it), unless it is missing or further than `MAX_SKEW_MS` from the
/// server's `now`.
pub(crate) fn taken_time(t: &Option<p::Timespec>, now: m::Timespec) -> m::Timespec {
    t.as_ref()
        .map(convert::from_ts)
        .filter(|t| (t.sec * 1000 - now.ms()).abs() <= MAX_SKEW_MS)
        .unwrap_or(now)
}

impl State {
    /// Before a call of `c` looks into `inos` (None: anywhere in its
    /// volume): other sessions' holds there are recalled, and waited for,
    /// so what they created is in the store when the call reads it.
    pub(crate) async fn settle(&self, c: &Caller, inos: Option<&[Ino]>) {
        let recalls = self.sessions.recall_holds(c.vol, &c.session, inos);
        crate::recall::wait(recalls, self.lease).await;
    }

    /// Before a call that reads or changes a whole volume by name (a
    /// snapshot, a clone, the file trash): every mount's hold there is
    /// recalled, so what the mounts' applications did before the call
    /// (creates, closes and removes answered ahead of the server) is in
    /// the store when the call reads it. A name that is no volume recalls
    /// nothing; the call itself says it is not found.
    pub(crate) async fn settle_volume(&self, ws: m::WorkspaceId, name: &str) {
        let name = name.to_string();
        if let Ok(v) = self.meta(move |m| m.volume(ws, &name)).await {
            self.settle_root(v.root).await;
        }
    }

    /// As [`State::settle_volume`], for the volume whose root is `root`.
    pub(crate) async fn settle_root(&self, root: Ino) {
        let recalls = self.sessions.recall_holds(root, "", None);
        crate::recall::wait(recalls, self.lease).await;
    }

    /// Before an open of `ino`: a holder may have removed or moved its
    /// name ahead of the server (a queued unlink or rename), and an open
    /// through a name the kernel still caches must not find the file as
    /// it was before that call returned. So the hold on the directory of
    /// its name is recalled first; the open then finds it unlinked (or
    /// gone), and the mount has the kernel look the name up again.
    pub(crate) async fn settle_open(&self, c: &Caller, ino: Ino) -> Result<(), Status> {
        let mut inos = vec![ino];
        if self.sessions.others_hold(c.vol, &c.session) {
            let vol = c.vol;
            if let Some(dir) = self.meta(move |m| m.dir_of(vol, ino)).await? {
                inos.push(dir);
            }
        }
        self.settle(c, Some(&inos)).await;
        Ok(())
    }

    pub(crate) async fn do_hold(
        &self,
        req: Request<p::HoldRequest>,
    ) -> Result<p::HoldReply, Status> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        if c.session.is_empty() || self.meta.shared() {
            return Ok(p::HoldReply::default());
        }
        // Under a quota every create and commit is checked when it is
        // made, so that the writer gets EDQUOT from that call: none ahead.
        let vol = c.vol;
        if self.meta(move |m| m.quota_limited(vol)).await? {
            return Ok(p::HoldReply::default());
        }
        if r.inos > MAX_RESERVE {
            return Err(Status::invalid_argument(format!(
                "{} inode numbers asked for; at most {MAX_RESERVE}",
                r.inos
            )));
        }
        let held = r.dir != 0 && {
            // The directory must be the caller's volume's.
            let (vol, dir) = (c.vol, r.dir);
            let a = self.meta(move |m| m.getattr(vol, dir)).await?;
            a.kind == m::FileKind::Directory && self.sessions.hold(&c.session, r.dir)
        };
        let inos = if r.inos > 0 {
            let (sid, n) = (c.session.clone(), r.inos as usize);
            self.meta(move |m| m.reserve_inos(&sid, n)).await?
        } else {
            Vec::new()
        };
        Ok(p::HoldReply { held, inos })
    }

    pub(crate) async fn do_apply(
        &self,
        req: Request<p::ApplyRequest>,
    ) -> Result<p::ApplyReply, Status> {
        let c = self.caller(&req, &req.get_ref().volume).await?;
        let r = req.into_inner();
        if c.session.is_empty() {
            return Err(Status::invalid_argument("Apply needs a mount session"));
        }
        if r.ops.len() > MAX_APPLY {
            return Err(Status::invalid_argument(format!(
                "{} operations in one call; at most {MAX_APPLY}",
                r.ops.len()
            )));
        }
        let cx = self.cx(&c);
        let when = |t: &Option<p::Timespec>| taken_time(t, cx.now);
        let ops = r
            .ops
            .iter()
            .map(|q| queued(q, &when))
            .collect::<Result<Vec<_>, Status>>()?;
        let out = self.meta(|m| m.apply(c.vol, &ops, &cx)).await?;
        let mut results = Vec::with_capacity(out.value.len());
        for (op, res) in ops.iter().zip(&out.value) {
            results.push(match res {
                Ok(a) => {
                    if matches!(op, m::Queued::Create(_)) && a.kind == m::FileKind::Directory {
                        self.sessions.hold_new(&c.session, a.ino);
                    }
                    p::ApplyResult {
                        attr: Some(attr(a)),
                        ..Default::default()
                    }
                }
                Err(e) => p::ApplyResult {
                    attr: None,
                    errno: convert::code_and_errno(e).1.to_string(),
                    message: e.to_string(),
                },
            });
        }
        // Pushed, not waited for: the creates' calls returned long ago
        // (what the hold promised is kept by the recall that brought this
        // batch), and a holder flushing from its recall must never wait on
        // another mount's recall in turn.
        self.reap(out.changes.freed.clone());
        let _ = self.publish(&c.session, &out.changes);
        Ok(p::ApplyReply {
            results,
            touched: out.changes.attrs.iter().map(attr).collect(),
        })
    }
}

/// One operation off the wire; `when` picks its time.
fn queued(
    q: &p::QueuedOp,
    when: &impl Fn(&Option<p::Timespec>) -> m::Timespec,
) -> Result<m::Queued, Status> {
    use p::queued_op::Op;
    Ok(match &q.op {
        Some(Op::Create(q)) => m::Queued::Create(m::QueuedCreate {
            parent: q.parent,
            name: q.name.to_vec(),
            node: m::NewNode {
                kind: convert::from_kind(q.kind)?,
                mode: q.mode,
                uid: q.uid,
                gid: q.gid,
                rdev: q.rdev,
                target: q.symlink_target.to_vec(),
            },
            ino: q.ino,
            now: when(&q.time),
            open: q.open,
        }),
        Some(Op::Commit(q)) => m::Queued::Commit {
            ino: q.ino,
            chunks: q
                .chunks
                .iter()
                .map(convert::from_chunk)
                .collect::<Result<Vec<_>, _>>()?,
            write_end: q.write_end,
            now: when(&q.time),
            kill_suidgid: q.kill_suidgid,
        },
        Some(Op::SetAttr(q)) => m::Queued::SetAttr {
            ino: q.ino,
            set: m::SetAttr {
                kill_suidgid: false,
                mode: q.mode,
                uid: q.uid,
                gid: q.gid,
                size: None,
                atime: convert::time_set(&q.atime),
                mtime: convert::time_set(&q.mtime),
            },
            now: when(&q.time),
        },
        Some(Op::Unlink(q)) => m::Queued::Unlink {
            parent: q.parent,
            name: q.name.to_vec(),
            ino: q.ino,
            now: when(&q.time),
        },
        Some(Op::Rename(q)) => m::Queued::Rename {
            parent: q.parent,
            name: q.name.to_vec(),
            new_parent: q.new_parent,
            new_name: q.new_name.to_vec(),
            ino: q.ino,
            replaced: (q.replaced != 0).then_some(q.replaced),
            now: when(&q.time),
        },
        None => return Err(Status::invalid_argument("an empty queued operation")),
    })
}
