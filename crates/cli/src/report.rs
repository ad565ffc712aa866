//! `cargo e2e report merge`: shards read as one (see `pipeline::merge`).

use pipeline::merge::{Shard, merge as merge_shards};

use crate::exit::Exit;
use crate::flags::ReportMerge;

pub fn merge(flags: &ReportMerge) -> anyhow::Result<()> {
    let shards = flags
        .reports
        .iter()
        .map(|p| Shard::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = merge_shards(shards);
    print!("{merged}");
    if let Some(out) = &flags.junit {
        let inputs: Vec<_> = merged
            .shards
            .iter()
            .filter_map(|s| s.junit.clone())
            .collect();
        let counts =
            test_runner::merge_junit(&inputs, out).map_err(|e| Exit::usage(e.to_string()))?;
        println!(
            "  junit: {out} ({} test cases from {} files)",
            counts.run,
            inputs.len()
        );
    }
    Ok(crate::exit::of_verdict(merged.verdict)?)
}
