//! The cycle scenarios as a bar chart (SVG), next to bench.json.

use camino::Utf8Path;
use plotters::prelude::*;

use super::Comparison;

pub fn draw(scenarios: &[Comparison], machine: &str, path: &Utf8Path) -> anyhow::Result<()> {
    let top = scenarios
        .iter()
        .map(|c| c.theirs_s().max(c.ours_s()))
        .fold(1.0, f64::max)
        * 1.2;
    let root = SVGBackend::new(path.as_std_path(), (760, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let names: Vec<&str> = scenarios.iter().map(|c| c.name).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "E2E cycle: naive script vs cargo xtask e2e (median seconds)",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..scenarios.len() as f64, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(scenarios.len() * 2 + 1)
        .x_label_formatter(&|x| {
            // Names under the middle of each pair of bars.
            let i = (*x - 0.5).round();
            if (*x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).copied().unwrap_or("").to_owned()
            } else {
                String::new()
            }
        })
        .y_desc("seconds")
        .x_desc(machine)
        .draw()?;
    let naive = RGBColor(150, 150, 150);
    let tool = RGBColor(40, 110, 200);
    let bar =
        |i: usize, left: f64, value: f64| [(i as f64 + left, 0.0), (i as f64 + left + 0.35, value)];
    chart
        .draw_series(
            scenarios
                .iter()
                .enumerate()
                .map(|(i, c)| Rectangle::new(bar(i, 0.12, c.theirs_s()), naive.filled())),
        )?
        .label("naive script")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], naive.filled()));
    chart
        .draw_series(
            scenarios
                .iter()
                .enumerate()
                .map(|(i, c)| Rectangle::new(bar(i, 0.53, c.ours_s()), tool.filled())),
        )?
        .label("cargo xtask e2e")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], tool.filled()));
    chart.draw_series(scenarios.iter().enumerate().map(|(i, c)| {
        Text::new(
            format!("{:.1}x", c.speedup()),
            (i as f64 + 0.58, c.ours_s() + top * 0.07),
            ("sans-serif", 15),
        )
    }))?;
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
