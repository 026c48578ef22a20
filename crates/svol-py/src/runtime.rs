//! One tokio runtime per process, made on first use (never at import, so
//! `python -m svol run` is still single-threaded when it enters its mount
//! namespace) and made again in a forked child, whose copy of the parent's
//! runtime has no threads.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

fn runtime() -> PyResult<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(rt.clone());
        }
    }
    // A forked child's copy cannot run (its threads were not copied) and
    // must not be dropped (that would wait for them): leak it.
    if let Some((_, old)) = slot.take() {
        std::mem::forget(old);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("svol-io")
        .enable_all()
        .build()
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("starting svol's I/O runtime: {e}"))
        })?;
    let rt = Arc::new(rt);
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}

/// Runs `f` to completion with the GIL released, so other Python threads
/// run meanwhile; every 100 ms checks for signals, so Ctrl-C interrupts a
/// long call (KeyboardInterrupt) instead of waiting for it.
pub(crate) fn block_on<F, T>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    let rt = runtime()?;
    py.detach(|| {
        rt.block_on(async move {
            tokio::pin!(f);
            loop {
                tokio::select! {
                    r = &mut f => return r,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}
