//! A run's trace drawn as an SVG timeline (`cargo e2e report trace`): one
//! row per track (phases, each image's build, each service, the tests), a
//! bar per span with its name, and a time axis in seconds. Written by hand:
//! a few rectangles and labels need no chart library.

use std::fmt::Write as _;

use pipeline::trace::Trace;

use crate::svg::escape;

const WIDTH: f64 = 1100.0;
const LABELS: f64 = 170.0;
const ROW: f64 = 26.0;
const TOP: f64 = 40.0;

/// A bar's colour by what it is.
fn colour(cat: &str, name: &str) -> &'static str {
    match (cat, name) {
        ("phase", "preflight") => "#9e9e9e",
        ("phase", "clean" | "certs") => "#bdbdbd",
        ("phase", "build") => "#f0a030",
        ("phase", "up") => "#3c8dd8",
        ("phase", "test") => "#4caf50",
        ("phase", _) => "#8d6e63",
        ("build", _) => "#f6c26b",
        ("container", "created") => "#c5d9ee",
        ("container", "starting") => "#7fb3e6",
        ("container", _) => "#d9e8f7",
        ("test", _) => "#8bd08f",
        _ => "#cccccc",
    }
}

pub fn svg(trace: &Trace, title: &str) -> String {
    let tracks = trace.tracks();
    let spans: Vec<_> = trace.trace_events.iter().filter(|e| e.ph == "X").collect();
    let end = spans
        .iter()
        .map(|e| (e.ts + e.dur.unwrap_or(0.0)) / 1e6)
        .fold(0.1, f64::max);
    let scale = (WIDTH - LABELS - 20.0) / end;
    let x = |seconds: f64| LABELS + seconds * scale;
    let height = TOP + ROW * tracks.len() as f64 + 40.0;
    let mut out = crate::svg::page(WIDTH, height, 12);
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"22\" font-size=\"15\">{}</text>",
        escape(title)
    );
    // A gridline a second (or every few, for long runs), numbered.
    let step = [1.0, 2.0, 5.0, 10.0, 30.0, 60.0]
        .into_iter()
        .find(|s| end / s <= 20.0)
        .unwrap_or(120.0);
    let bottom = TOP + ROW * tracks.len() as f64;
    let mut t = 0.0;
    while t <= end {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"#eeeeee\"/>\
             <text x=\"{0:.1}\" y=\"{1}\" text-anchor=\"middle\" fill=\"#666\">{t:.0} s</text>",
            x(t),
            bottom + 16.0
        );
        t += step;
    }
    for (row, (tid, name)) in tracks.iter().enumerate() {
        let y = TOP + ROW * row as f64;
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{:.1}\">{}</text>",
            y + ROW * 0.65,
            escape(name)
        );
        for e in spans.iter().filter(|e| e.tid == *tid) {
            let (start, seconds) = (e.ts / 1e6, e.dur.unwrap_or(0.0) / 1e6);
            let w = (seconds * scale).max(1.5);
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{}\">\
                 <title>{}: {seconds:.2} s from {start:.2} s</title></rect>",
                x(start),
                y + 3.0,
                ROW - 6.0,
                colour(&e.cat, &e.name),
                escape(&e.name)
            );
            // The name inside the bar when it fits.
            if w > 7.0 * e.name.len() as f64 {
                let _ = write!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#222\">{}</text>",
                    x(start) + 4.0,
                    y + ROW * 0.65,
                    escape(&e.name)
                );
            }
            out.push('\n');
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::trace::Event;

    fn event(name: &str, ph: &str, tid: u32, ts: f64, dur: Option<f64>) -> Event {
        Event {
            name: name.into(),
            cat: "phase".into(),
            ph: ph.into(),
            ts,
            dur,
            pid: 1,
            tid,
            args: if ph == "M" {
                serde_json::json!({ "name": name })
            } else {
                serde_json::Value::Null
            },
        }
    }

    #[test]
    fn every_track_is_a_row_and_every_span_a_bar() {
        let trace = Trace {
            trace_events: vec![
                event("phases", "M", 1, 0.0, None),
                event("tests 1", "M", 300, 0.0, None),
                event("build", "X", 1, 0.0, Some(2e6)),
                event("up", "X", 1, 2e6, Some(1e6)),
                event("a <test>", "X", 300, 3e6, Some(0.5e6)),
            ],
            display_time_unit: "ms".into(),
        };
        let svg = svg(&trace, "run & trace");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<rect x=").count(), 3, "{svg}");
        assert!(svg.contains(">phases</text>") && svg.contains(">tests 1</text>"));
        assert!(svg.contains("run &amp; trace") && svg.contains("a &lt;test&gt;"));
        // The axis reaches the end of the last span.
        assert!(svg.contains(">3 s</text>"), "{svg}");
    }
}
