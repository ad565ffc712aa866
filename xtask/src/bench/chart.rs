//! The cycle scenarios as a bar chart (SVG), next to bench.json: two bars a
//! scenario (the naive script, the tool), their ratio above. Written by hand:
//! a chart library cost every `cargo xtask` build its compile time for this
//! one picture.

use std::fmt::Write as _;

use camino::Utf8Path;

use cargo_e2e::svg::escape;

use super::Comparison;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
/// The plot's box: left, top, right, bottom.
const PLOT: (f64, f64, f64, f64) = (64.0, 48.0, 740.0, 360.0);
const NAIVE: &str = "#969696";
const TOOL: &str = "#286ec8";

pub fn draw(scenarios: &[Comparison], machine: &str, path: &Utf8Path) -> anyhow::Result<()> {
    std::fs::write(path, svg(scenarios, machine))?;
    Ok(())
}

fn svg(scenarios: &[Comparison], machine: &str) -> String {
    let top = scenarios
        .iter()
        .map(|c| c.theirs_s().max(c.ours_s()))
        .fold(1.0, f64::max)
        * 1.2;
    let (left, upper, right, bottom) = PLOT;
    let y = |seconds: f64| bottom - (bottom - upper) * seconds / top;
    let slot = (right - left) / scenarios.len().max(1) as f64;
    let mut out = cargo_e2e::svg::page(WIDTH, HEIGHT, 13);
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"18\">E2E cycle: naive script vs cargo xtask e2e (median seconds)</text>",
        WIDTH / 2.0
    );
    // The axis and five gridlines with their seconds.
    for i in 0..=5 {
        let s = top * f64::from(i) / 5.0;
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{right}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#e0e0e0\"/>\
             <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{s:.0}</text>",
            y(s),
            left - 6.0,
            y(s) + 4.0
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{left}\" x2=\"{left}\" y1=\"{upper}\" y2=\"{bottom}\" stroke=\"black\"/>\
         <line x1=\"{left}\" x2=\"{right}\" y1=\"{bottom}\" y2=\"{bottom}\" stroke=\"black\"/>\
         <text x=\"16\" y=\"{0}\" transform=\"rotate(-90 16 {0})\" text-anchor=\"middle\">seconds</text>\
         <text x=\"{1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
        (upper + bottom) / 2.0,
        (left + right) / 2.0,
        HEIGHT - 12.0,
        escape(machine)
    );
    for (i, c) in scenarios.iter().enumerate() {
        let x = left + slot * i as f64;
        let bar = slot * 0.35;
        for (offset, seconds, colour) in [(0.12, c.theirs_s(), NAIVE), (0.53, c.ours_s(), TOOL)] {
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                x + slot * offset,
                y(seconds),
                bottom - y(seconds)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.1}x</text>\
             <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x + slot * 0.7,
            y(c.ours_s()) - 8.0,
            c.speedup(),
            x + slot / 2.0,
            bottom + 20.0,
            escape(c.name)
        );
    }
    // The legend, upper right.
    for (i, (label, colour)) in [("naive script", NAIVE), ("cargo xtask e2e", TOOL)]
        .iter()
        .enumerate()
    {
        let ly = upper + 12.0 + 20.0 * i as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            right - 150.0,
            ly - 9.0,
            right - 132.0,
            ly
        );
    }
    out.push_str("</svg>\n");
    out
}
