//! `__reaper`: the process `e2e` starts beside each run (see
//! `pipeline::reaper`). Its stdin is the run's pipe, its stdout the run's
//! project lock, its stderr its log in the run folder.

use std::os::fd::AsFd as _;

pub fn run() -> anyhow::Result<()> {
    let order =
        pipeline::reaper::wait_for_the_run(std::io::stdin().lock()).map_err(anyhow::Error::msg)?;
    let Some(order) = order else {
        return Ok(());
    };
    eprintln!(
        "run {} went away without finishing: applying {}",
        order.run_pid, order.policy
    );
    let lock = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let done = pipeline::reaper::carry_out(&order, lock).map_err(anyhow::Error::msg)?;
    eprintln!("{done}");
    Ok(())
}
