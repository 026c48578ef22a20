//! How this process was started, for what starts another copy of it: a
//! detached mount re-runs its own command line, `svol run` starts a guard.
//! From the binary that is the executable itself; from Python it is the
//! interpreter with `-m svol`, since the library lives in the interpreter.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

#[derive(Debug, Clone)]
pub struct Invocation {
    /// The program that runs the command line again.
    pub program: PathBuf,
    /// Arguments that come before the command line (`-m svol` for Python).
    pub prefix: Vec<String>,
    /// The command line itself, without the program name.
    pub args: Vec<String>,
}

impl Invocation {
    /// The running executable and its arguments.
    pub fn from_env() -> Self {
        let mut args = std::env::args();
        let argv0 = args.next().unwrap_or_else(|| "svol".into());
        Invocation {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from(argv0)),
            prefix: Vec::new(),
            args: args.collect(),
        }
    }
}

static CURRENT: OnceLock<Invocation> = OnceLock::new();

pub(crate) fn set(inv: Invocation) {
    let _ = CURRENT.set(inv);
}

/// This process's command line, without the program name.
pub(crate) fn args() -> Vec<String> {
    CURRENT.get().map(|i| i.args.clone()).unwrap_or_default()
}

/// A command that starts this program again (add the arguments).
pub(crate) fn again() -> Command {
    let inv = CURRENT.get().cloned().unwrap_or_else(Invocation::from_env);
    let mut c = Command::new(inv.program);
    c.args(inv.prefix);
    c
}
