//! `cargo e2e reap`: the sweep of projects dead runs left (see `pipeline::reap`).

use pipeline::reap::{Thresholds, human, sweep};

use crate::exit::Exit;
use crate::flags::Reap;

pub fn run(flags: &Reap) -> anyhow::Result<()> {
    let t = Thresholds {
        gone: flags.older_than,
        elsewhere: flags.elsewhere_after,
    };
    let swept = sweep(flags.dry_run, t).map_err(Exit::environment)?;
    if swept.is_empty() {
        println!("no project labelled by cargo-e2e on this engine");
        return Ok(());
    }
    println!("{:<28} {:<28} {:>8}  action", "project", "run", "age");
    let mut failed = 0;
    for (d, done) in &swept {
        let action = match (d.remove, done, flags.dry_run) {
            (true, _, true) => format!("would remove: {}", d.why),
            (true, Some(r), false) => {
                failed += usize::from(r != "removed");
                format!("{r}: {}", d.why)
            }
            _ => format!("kept: {}", d.why),
        };
        let age = human(std::time::Duration::from_secs(d.age_s));
        println!("{:<28} {:<28} {:>8}  {action}", d.project, d.owner, age);
    }
    if failed > 0 {
        return Err(Exit::environment(format!("{failed} project(s) could not be removed")).into());
    }
    Ok(())
}
