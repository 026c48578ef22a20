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
    let guard = spawn_guard(pid);
    let status = child.wait().await;
    for f in forwarders {
        f.abort();
    }
    if pid > 0 {
        // What the command left running in its group ends with it, before
        // its volumes go away.
        // SAFETY: signalling the process group we created for the command.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    if let Some(mut g) = guard {
        let _ = g.kill();
        let _ = g.wait();
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

/// Starts `svol __guard`: a small process that kills the command's whole
/// process group if this runner dies without cleaning up (SIGKILL). The
/// command itself would die anyway (parent-death signal); the guard also
/// takes down what it started. On a normal end the runner kills the guard.
fn spawn_guard(pgid: libc::pid_t) -> Option<std::process::Child> {
    if pgid <= 0 {
        return None;
    }
    crate::invocation::again()
        .args([
            "__guard",
            &pgid.to_string(),
            &std::process::id().to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()
}

/// The guard's whole life: wait for the runner to die, then kill the group.
/// Runs before anything else in `main`, single-threaded.
pub(crate) fn guard(args: &[String]) -> ! {
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<libc::pid_t>().ok());
    let (Some(pgid), Some(runner)) = (num(0), num(1)) else {
        eprintln!("svol __guard: usage: svol __guard PGID RUNNER_PID");
        std::process::exit(2);
    };
    // Polling the parent is simple and cannot miss the event (a parent-death
    // signal can race with our own start-up); 50 ms is the worst delay.
    loop {
        // SAFETY: getppid and kill have no memory-safety preconditions.
        unsafe {
            if libc::getppid() != runner {
                libc::kill(-pgid, libc::SIGKILL);
                std::process::exit(0);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
