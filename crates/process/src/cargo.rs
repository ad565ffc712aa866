//! A nested cargo's progress, read from its stderr: cargo draws its progress
//! bar there (`Building [=====>    ] 45/120: serde, syn`) when asked to even
//! without a terminal, which is how a build beside the phases says how far
//! it has come.

use crate::Cmd;

/// How far a cargo build has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoProgress {
    /// Units built, of `total` (crates, build scripts).
    pub done: u64,
    pub total: u64,
    /// What cargo builds now, as it names them (`serde, syn(build)`).
    pub building: String,
}

impl Cmd {
    /// Asks cargo to draw its progress bar on a pipe too (read back with
    /// [`cargo_progress`]), wide enough to name what it builds.
    pub fn with_cargo_progress(self) -> Cmd {
        self.env("CARGO_TERM_PROGRESS_WHEN", "always")
            .env("CARGO_TERM_PROGRESS_WIDTH", "200")
    }
}

/// The progress in one line of cargo's stderr, when it is its bar.
pub fn cargo_progress(line: &str) -> Option<CargoProgress> {
    let rest = line.trim_start().strip_prefix("Building [")?;
    let (_, counts) = rest.split_once("] ")?;
    let (fraction, building) = counts.split_once(": ").unwrap_or((counts, ""));
    let (done, total) = fraction.trim().split_once('/')?;
    Some(CargoProgress {
        done: done.parse().ok()?,
        total: total.parse().ok()?,
        building: building.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_reads_as_counts_and_names() {
        let bar = "    Building [=====>                      ] 3/14: libc(build.rs), shared_thread        ";
        assert_eq!(
            cargo_progress(bar),
            Some(CargoProgress {
                done: 3,
                total: 14,
                building: "libc(build.rs), shared_thread".into()
            })
        );
        assert_eq!(cargo_progress("   Compiling libc v0.2.191"), None);
        assert_eq!(
            cargo_progress("    Building [====] 14/14").map(|p| p.done),
            Some(14)
        );
    }
}
