//! A mount's session stream in the SDK's own types: what a client sends
//! (Hello, heartbeats, acknowledgements, Bye) and what the server pushes
//! (Welcome, invalidations and recalls, lease renewals). The protocol's
//! rules — when to beat, what an invalidation obliges the client to drop
//! before it acknowledges — are the mount's; this is only their vocabulary.

use bytes::Bytes;
use svol_proto as p;

use crate::node::{attrs, Attr, Peeked};
use crate::{Client, ClientError, Result};

/// What a session sends the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionUp {
    /// Opens the session (or takes `resume_session` up again, keeping its
    /// open files and locks if its lease has not run out). `app`: the app
    /// its lease keeps running ("": the volume's); `host` and `purpose`
    /// are how people see the client listed.
    Hello {
        volume: String,
        resume_session: String,
        app: String,
        host: String,
        purpose: String,
    },
    /// Heartbeat `n` of this stream; the server's `Lease` echoes it.
    Heartbeat(u64),
    /// Invalidations up to this one are applied to the kernel.
    Applied(u64),
    /// Listings recalled by invalidations up to this one are dropped: the
    /// change that recalled them may return.
    Recalled(u64),
    /// Done: end the session now rather than when the lease runs out.
    Bye,
}

impl From<SessionUp> for p::SessionUp {
    fn from(m: SessionUp) -> Self {
        use p::session_up::Msg;
        let msg = match m {
            SessionUp::Hello {
                volume,
                resume_session,
                app,
                host,
                purpose,
            } => Msg::Hello(p::Hello {
                volume,
                resume_session,
                app,
                host,
                purpose,
            }),
            SessionUp::Heartbeat(n) => Msg::Heartbeat(p::Heartbeat { n }),
            SessionUp::Applied(seq) => Msg::Applied(p::Applied { seq }),
            SessionUp::Recalled(seq) => Msg::Recalled(p::Recalled { seq }),
            SessionUp::Bye => Msg::Bye(p::Bye {}),
        };
        p::SessionUp { msg: Some(msg) }
    }
}

/// The server's answer to Hello. `resumed`: the session asked for was
/// taken up again; false: a new one (the old one's lease had run out,
/// and everything it held is gone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Welcome {
    pub session: String,
    pub lease_ms: u64,
    pub root_ino: u64,
    pub resumed: bool,
    pub generation: u64,
}

/// Changes other clients made that this session may have cached, in push
/// order (`seq`, from 1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invalidation {
    pub seq: u64,
    /// Nodes whose attributes or contents changed.
    pub inodes: Vec<u64>,
    /// Names that changed: (directory, name).
    pub entries: Vec<(u64, Bytes)>,
    /// Invalidations were lost: drop every cache, not just these.
    pub reset: bool,
    /// Directories whose listing this session watched and another changed:
    /// drop the listings and answer `Recalled` at once (the change waits).
    pub recalled: Vec<u64>,
    /// Entries of watched listings whose attributes (not names) changed,
    /// as they are now: put them into the listings, then answer
    /// `Recalled`. Their inodes are in `inodes` too.
    pub updated: Vec<Attr>,
    /// Of those, small files wholly inline: their contents at that version.
    pub contents: Vec<Peeked>,
}

impl From<p::Invalidation> for Invalidation {
    fn from(i: p::Invalidation) -> Self {
        Self {
            seq: i.seq,
            inodes: i.inodes,
            entries: i.entries.into_iter().map(|e| (e.parent, e.name)).collect(),
            reset: i.reset,
            recalled: i.recalled,
            updated: attrs(i.updated),
            contents: i.contents.into_iter().map(Peeked::from).collect(),
        }
    }
}

/// What the server pushes down a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionDown {
    Welcome(Welcome),
    Invalidation(Invalidation),
    /// Heartbeat `n` renewed the lease for `lease_ms` from when the server
    /// got it.
    Lease {
        n: u64,
        lease_ms: u64,
    },
}

/// The server's side of an open session stream.
pub struct SessionStream(tonic::Streaming<p::SessionDown>);

impl std::fmt::Debug for SessionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionStream")
    }
}

impl SessionStream {
    /// The next message; None once the server has closed the stream.
    pub async fn message(&mut self) -> Result<Option<SessionDown>> {
        use p::session_down::Msg;
        loop {
            let Some(m) = self.0.message().await.map_err(ClientError::from)? else {
                return Ok(None);
            };
            return Ok(Some(match m.msg {
                Some(Msg::Welcome(w)) => SessionDown::Welcome(Welcome {
                    session: w.session,
                    lease_ms: w.lease_ms,
                    root_ino: w.root_ino,
                    resumed: w.resumed,
                    generation: w.generation,
                }),
                Some(Msg::Invalidation(i)) => SessionDown::Invalidation(i.into()),
                Some(Msg::Lease(l)) => SessionDown::Lease {
                    n: l.n,
                    lease_ms: l.lease_ms,
                },
                // A message this client does not know: a newer server's.
                None => continue,
            }));
        }
    }
}

impl Client {
    /// Opens a mount's session stream: `up` carries Hello, heartbeats and
    /// acknowledgements.
    pub async fn session(
        &self,
        up: impl futures::Stream<Item = SessionUp> + Send + 'static,
    ) -> Result<SessionStream> {
        use futures::StreamExt;
        let up = up.map(p::SessionUp::from);
        Ok(SessionStream(
            self.rpc().session(self.req(up)).await?.into_inner(),
        ))
    }
}
