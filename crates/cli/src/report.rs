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

/// `cargo e2e report trace`: the run drawn as an SVG timeline.
pub fn trace(flags: &crate::flags::ReportTrace) -> anyhow::Result<()> {
    let given = match &flags.run {
        Some(p) => p.clone(),
        None => crate::workspace()?.target_dir.join("e2e/report.json"),
    };
    let trace_path = if given.is_dir() {
        given.join("trace.json")
    } else if given.file_name() == Some("report.json") {
        let report = pipeline::RunReport::read(&given)?;
        report
            .trace
            .unwrap_or_else(|| report.run_dir.join("trace.json"))
    } else {
        given
    };
    let trace = pipeline::trace::Trace::read(&trace_path)?;
    let out = flags
        .out
        .clone()
        .unwrap_or_else(|| trace_path.with_file_name("trace.svg"));
    let title = format!(
        "{} ({})",
        trace_path
            .parent()
            .and_then(|d| d.file_name())
            .unwrap_or("run"),
        trace_path
    );
    std::fs::write(&out, crate::timeline::svg(&trace, &title))
        .map_err(|e| Exit::environment(format!("cannot write {out}: {e}")))?;
    println!("{out}");
    Ok(())
}
