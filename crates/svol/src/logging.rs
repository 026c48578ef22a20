//! Log lines go to stderr through a bounded queue and a writer thread, so
//! a slow or stalled reader of stderr (a pipe nobody drains, a paused
//! terminal) can never block a FUSE request: when the queue is full, lines
//! are dropped and counted instead.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static QUEUE: OnceLock<SyncSender<Vec<u8>>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static PENDING: AtomicU64 = AtomicU64::new(0);

fn writer(rx: Receiver<Vec<u8>>) {
    let mut err = std::io::stderr();
    for line in rx {
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                err,
                "svol: {dropped} log lines dropped (stderr was not keeping up)"
            );
        }
        let _ = err.write_all(&line);
        PENDING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One log line being formatted; queued when dropped.
pub(crate) struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        if line.is_empty() {
            return;
        }
        PENDING.fetch_add(1, Ordering::Relaxed);
        if queue().try_send(line).is_err() {
            PENDING.fetch_sub(1, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The queue, and its writer thread, start with the first log line (so
/// `svol run` is still single-threaded when it enters its namespace).
fn queue() -> &'static SyncSender<Vec<u8>> {
    QUEUE.get_or_init(|| {
        let (tx, rx) = sync_channel(4096);
        // Should the thread not start, lines are counted as dropped.
        let _ = std::thread::Builder::new()
            .name("svol-log".into())
            .spawn(move || writer(rx));
        tx
    })
}

pub(crate) fn make_line() -> Line {
    Line(Vec::new())
}

/// Waits (briefly) for queued lines to reach stderr before the process exits.
pub(crate) fn flush() {
    let start = Instant::now();
    while PENDING.load(Ordering::Relaxed) > 0 && start.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(5));
    }
}
