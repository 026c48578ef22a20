//! The server's notion of "now": leases, app grace periods and upload
//! grace are all measured on it. A seam so tests move time instead of
//! sleeping through it.

use std::sync::atomic::{AtomicI64, Ordering};

use svol_meta::Timespec;

pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    /// Wall-clock time (what leases stored in the database are compared to).
    fn now(&self) -> Timespec;

    fn now_ms(&self) -> i64 {
        let t = self.now();
        t.sec * 1000 + (t.nsec / 1_000_000) as i64
    }
}

/// The system's real-time clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timespec {
        Timespec::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        Self {
            ms: AtomicI64::new(start_ms),
        }
    }

    pub fn advance(&self, ms: i64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timespec {
        let ms = self.ms.load(Ordering::SeqCst);
        Timespec {
            sec: ms.div_euclid(1000),
            nsec: (ms.rem_euclid(1000) * 1_000_000) as u32,
        }
    }
}
