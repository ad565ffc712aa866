//! Whether a container's PID 1 will act on its stop signal. The kernel
//! delivers a signal to a namespace's init only if it installed a handler:
//! `sleep` as PID 1 ignores SIGTERM, and `docker stop` then waits out the
//! whole grace for nothing. `/proc/PID/status` says which signals a process
//! catches (SigCgt) and ignores (SigIgn); the engine says its PID and stop
//! signal. Read only where the PID is provably the container's (its cgroup
//! names the container): on a remote engine, or inside another PID
//! namespace, the answer is "cannot tell" and the grace stays.

/// The number of a signal as Docker names it (`SIGTERM`, `TERM`, `15`);
/// empty means Docker's default, SIGTERM.
pub fn signal_number(name: &str) -> Option<u32> {
    let name = name.trim();
    if name.is_empty() {
        return Some(15);
    }
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let upper = name.to_ascii_uppercase();
    let n = match upper.strip_prefix("SIG").unwrap_or(&upper) {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "WINCH" => 28,
        "PWR" => 30,
        _ => return None,
    };
    Some(n)
}

/// Whether a process whose `/proc/PID/status` is `status` catches `signal`
/// (a handler, not ignored); `None` when the text says neither.
pub fn catches(status: &str, signal: u32) -> Option<bool> {
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    let bit = 1u64.checked_shl(signal.checked_sub(1)?)?;
    let caught = mask("SigCgt:")?;
    let ignored = mask("SigIgn:").unwrap_or(0);
    Some(caught & bit != 0 && ignored & bit == 0)
}

/// Whether the container's PID 1 acts on `stop_signal`, read from this
/// machine's `/proc`; `None` when that cannot be told for sure.
pub fn pid1_acts_on(container_id: &str, pid: u32, stop_signal: &str) -> Option<bool> {
    if pid == 0 || container_id.len() < 12 {
        return None;
    }
    let proc = format!("/proc/{pid}");
    // The same PID on another host (a remote engine) or in another PID
    // namespace is another process: its cgroup would not name the container.
    let cgroup = std::fs::read_to_string(format!("{proc}/cgroup")).ok()?;
    if !cgroup.contains(container_id) {
        return None;
    }
    let status = std::fs::read_to_string(format!("{proc}/status")).ok()?;
    catches(&status, signal_number(stop_signal)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_as_docker_writes_them() {
        for (name, n) in [
            ("", 15),
            ("SIGTERM", 15),
            ("TERM", 15),
            ("SIGINT", 2),
            ("sigquit", 3),
            ("9", 9),
        ] {
            assert_eq!(signal_number(name), Some(n), "{name}");
        }
        assert_eq!(signal_number("SIGNOPE"), None);
    }

    #[test]
    fn the_masks_say_what_a_process_catches() {
        // Postgres: catches SIGINT (2) and SIGTERM (15), among others.
        let postgres = "Name:\tpostgres\nSigIgn:\t0000000001401000\nSigCgt:\t0000000180006287\n";
        assert_eq!(catches(postgres, 2), Some(true));
        assert_eq!(catches(postgres, 15), Some(true));
        // `sleep` as PID 1: no handler at all, so SIGTERM does nothing.
        let sleep = "Name:\tsleep\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n";
        assert_eq!(catches(sleep, 15), Some(false));
        // Ignored wins over a stale caught bit.
        let ignoring = "SigIgn:\t0000000000004000\nSigCgt:\t0000000000004000\n";
        assert_eq!(catches(ignoring, 15), Some(false));
        assert_eq!(catches("Name:\tx\n", 15), None);
    }

    #[test]
    fn our_own_process_is_read_right() {
        // This test process installs no SIGTERM handler; a process we do not
        // know to be a container's is never judged.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(catches(&status, 15), Some(false));
        assert_eq!(
            pid1_acts_on("0123456789abcdef", std::process::id(), "SIGTERM"),
            None
        );
    }
}
