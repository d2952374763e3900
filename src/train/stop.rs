//! Graceful stop: SIGINT (Ctrl-C) and SIGTERM (what a scheduler sends before preemption) ask
//! the training loop to finish its current step, write a checkpoint, flush the log and return
//! [`Interrupted`]; `cm` then exits with [`EXIT_INTERRUPTED`]. A second signal exits at once
//! with status 128 + signal (the last checkpoint on disk is intact: every write is atomic).
//!
//! The handlers are installed only while a run that asked for them trains ([`Handlers`]);
//! outside training the signals keep their default action.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

/// Exit status of a run stopped by a signal with its checkpoint written (EX_TEMPFAIL of
/// sysexits.h: run the same command again to continue).
pub const EXIT_INTERRUPTED: i32 = 75;

/// The first signal received while the handlers were installed (0 = none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: one atomic swap, and `_exit` on the second signal.
    if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(128 + sig) }
    }
}

/// The signal that asked the run to stop, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Asks the training loop to stop as if `sig` had arrived (unless a signal already did): it
/// finishes the step, writes a checkpoint and returns [`Interrupted`]. For library callers
/// that stop a run from inside it, e.g. the Python package when a progress callback raises.
/// Works with or without [`Handlers`]; call [`clear`] once the run has returned.
pub fn request(sig: i32) {
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

/// Forgets a stop request, so that the next run in this process does not stop at once (the
/// Python package calls it after every training call; [`Handlers`] clear it themselves).
pub fn clear() {
    SIGNAL.store(0, Ordering::SeqCst);
}

/// "SIGINT", "SIGTERM" or "signal N".
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        s => format!("signal {s}"),
    }
}

/// SIGINT and SIGTERM handlers, installed for the life of this value; dropping it restores
/// the previous dispositions.
pub struct Handlers {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl Handlers {
    /// Installs the handlers (and forgets any signal received earlier).
    pub fn install() -> Self {
        SIGNAL.store(0, Ordering::SeqCst);
        let mut old = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is a valid value; the handler only touches an atomic
            // and calls _exit, both async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &sa, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        Self { old }
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores the disposition sigaction returned earlier.
            unsafe {
                libc::sigaction(*sig, prev, std::ptr::null_mut());
            }
        }
        // The run that asked for the handlers has returned (its `Interrupted` already carries
        // the signal): a library caller's next run in this process must not see it.
        clear();
    }
}

/// A run stopped by a signal after writing its checkpoint.
#[derive(Debug)]
pub struct Interrupted {
    /// The signal number (SIGINT or SIGTERM).
    pub signal: i32,
    /// The step the run stopped at, which its checkpoint holds.
    pub step: u64,
    /// The checkpoint written for that step.
    pub checkpoint: PathBuf,
    /// What to do next (for `cm train`: run the same command again to continue).
    pub next: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped by {} at step {}: checkpoint {} written and log flushed; {}",
            signal_name(self.signal),
            self.step,
            self.checkpoint.display(),
            self.next
        )
    }
}

impl std::error::Error for Interrupted {}
