//! `__reaper`: the process `e2e` starts beside each run (see
//! `pipeline::reaper`). Its stdin is the run's pipe, its stdout the run's
//! project lock, its stderr its log in the run folder.

use std::os::fd::AsFd as _;

pub fn run() -> anyhow::Result<()> {
    let left = pipeline::reaper::wait_for_the_run(std::io::stdin().lock())?;
    let Some(pipeline::reaper::Orphaned { order, groups }) = left else {
        return Ok(());
    };
    eprintln!(
        "run {} went away without finishing: applying {}",
        order.run_pid, order.policy
    );
    // Its build, `up` or tests outlive it in groups of their own.
    let stopped = pipeline::reaper::stop_groups(&groups, std::time::Duration::from_secs(5));
    if stopped > 0 {
        eprintln!("stopped {stopped} process group(s) the run had started");
    }
    let lock = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let done = pipeline::reaper::carry_out(&order, lock)?;
    eprintln!("{done}");
    Ok(())
}
