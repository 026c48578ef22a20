//! The native half of the svol Python package (`svol._native`): the Rust
//! SDK's clients, apps, volumes and file operations as Python classes, and
//! the whole `svol` command line (`python -m svol …`), so the wire protocol,
//! dedup-aware uploads and config lookup exist once. The Python half
//! (`python/svol`) owns the public API, lazy volumes and functions; this
//! crate owns no policy of its own and must not depend on the server's
//! crates other than through the `svol` command line.

mod errors;
mod objects;
mod runtime;

use pyo3::prelude::*;

/// Runs the svol command line with `argv` (without the program name) in
/// this process and exits it. `python -m svol` calls this; `program`
/// and `prefix` say how to start this command line again (the
/// interpreter and `-m svol`).
#[pyfunction]
fn cli(program: String, prefix: Vec<String>, argv: Vec<String>) {
    svol::main(svol::Invocation {
        program: program.into(),
        prefix,
        args: argv,
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    objects::register(m)?;
    Ok(())
}
