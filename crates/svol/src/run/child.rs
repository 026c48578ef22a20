//! The command of `svol run`: started with our stdio, in its own process
//! group (the terminal's foreground group when there is a terminal, so
//! Ctrl-C reaches it exactly once), killed if the runner dies, and sent
//! every terminating signal the runner receives.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

pub(crate) async fn run(cmd: &[String], env: &[(String, String)], app: &str) -> Result<i32> {
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(0) } == 1;
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).env("SVOL_APP", app);
    for (k, v) in env {
        c.env(k, v);
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The runner may already be gone (SIGKILL before prctl).
            if libc::getppid() == 1 {
                libc::_exit(137);
            }
            libc::setpgid(0, 0);
            if tty {
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(0, libc::getpid());
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    // Listen before the child exists so no signal falls between.
    let mut sigs = Vec::new();
    for s in FORWARDED {
        sigs.push((
            s,
            signal(SignalKind::from_raw(s)).context("installing signal handlers")?,
        ));
    }
    let mut child = tokio::process::Command::from(c)
        .spawn()
        .with_context(|| format!("starting {}", cmd[0]))?;
    let pid = child.id().map(|p| p as libc::pid_t).unwrap_or(0);
    let forwarders: Vec<_> = sigs
        .into_iter()
        .map(|(n, mut sig)| {
            tokio::spawn(async move {
                while sig.recv().await.is_some() {
                    if pid > 0 {
                        // SAFETY: signalling our own child.
                        unsafe { libc::kill(pid, n) };
                    }
                }
            })
        })
        .collect();
    let status = child.wait().await;
    for f in forwarders {
        f.abort();
    }
    let status = status.with_context(|| format!("waiting for {}", cmd[0]))?;
    if tty {
        // SAFETY: give the terminal back to our own process group.
        unsafe {
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(0, libc::getpgrp());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
    }
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    })
}
