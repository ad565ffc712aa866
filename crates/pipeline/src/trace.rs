//! A picture of a run: `trace.json` in the run's folder, in the Chrome
//! trace event format that Perfetto and `chrome://tracing` open, one track
//! each for the phases, each image's build, each service's container
//! (created, starting, ready), and the tests (each test from nextest's
//! JUnit times). `cargo e2e report trace` draws it as an SVG.

use std::collections::BTreeMap;

use camino::Utf8Path;
use serde::{Deserialize, Serialize};

use crate::report::RunReport;

/// The trace file: Chrome's JSON object format.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub trace_events: Vec<Event>,
    #[serde(default)]
    pub display_time_unit: String,
}

/// One event: a span (`ph: "X"`, `ts` and `dur` in microseconds from the
/// run's start) or a track's name (`ph: "M"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub name: String,
    #[serde(default)]
    pub cat: String,
    pub ph: String,
    #[serde(default)]
    pub ts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dur: Option<f64>,
    pub pid: u32,
    pub tid: u32,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub args: serde_json::Value,
}

/// The tracks, in the order they are drawn.
const PHASES: u32 = 1;
const IMAGES: u32 = 100;
const SERVICES: u32 = 200;
const TESTS: u32 = 300;

impl Trace {
    /// The run's trace, from its report and its JUnit report.
    pub fn of_run(report: &RunReport) -> Trace {
        let zero = report
            .phases
            .iter()
            .map(|p| p.started_at)
            .filter(|t| *t > 0.0)
            .fold(f64::MAX, f64::min);
        let zero = if zero == f64::MAX { 0.0 } else { zero };
        let mut t = Tracks::new(zero);
        t.name(PHASES, "phases");
        for p in &report.phases {
            let note = serde_json::json!({ "status": p.status, "note": p.note });
            t.span(
                PHASES,
                p.phase.name(),
                "phase",
                p.started_at,
                p.seconds,
                note,
            );
        }
        for (i, image) in report.images.iter().enumerate() {
            let tid = IMAGES + i as u32;
            if let Some((first, last)) = image.span {
                t.name(tid, &format!("image {}", image.service));
                let why = serde_json::json!({ "built": image.built, "why": image.why });
                // The last step's own time is not in the log: at least a moment.
                let seconds = (last - first).max(0.05);
                t.span(tid, "build", "build", first, seconds, why);
            }
        }
        if let Some(up) = &report.containers {
            let up_started = report
                .phases
                .iter()
                .find(|p| p.phase == crate::Phase::Up)
                .map_or(zero, |p| p.started_at);
            let end = report
                .phases
                .iter()
                .map(|p| p.started_at + p.seconds)
                .fold(zero, f64::max);
            for (i, (service, (created, started))) in up.times.iter().enumerate() {
                let tid = SERVICES + i as u32;
                t.name(tid, &format!("service {service}"));
                let null = serde_json::Value::Null;
                t.span(
                    tid,
                    "created",
                    "container",
                    *created,
                    started - created,
                    null.clone(),
                );
                match up.ready_s.get(service).map(|s| up_started + s) {
                    Some(ready) => {
                        t.span(
                            tid,
                            "starting",
                            "container",
                            *started,
                            ready - started,
                            null.clone(),
                        );
                        t.span(tid, "ready", "container", ready, end - ready, null);
                    }
                    None => t.span(tid, "running", "container", *started, end - started, null),
                }
            }
        }
        if let Some(junit) = &report.junit {
            let mut lanes: Vec<f64> = Vec::new();
            let mut cases = test_runner::cases(junit).unwrap_or_default();
            cases.sort_by(|a, b| a.start.unwrap_or(0.0).total_cmp(&b.start.unwrap_or(0.0)));
            for case in cases {
                let Some(start) = case.start else { continue };
                // Tests that overlap go on lanes of their own.
                let lane = match lanes.iter().position(|free| *free <= start) {
                    Some(l) => l,
                    None => {
                        lanes.push(0.0);
                        lanes.len() - 1
                    }
                };
                lanes[lane] = start + case.seconds;
                let tid = TESTS + lane as u32;
                t.name(tid, &format!("tests {}", lane + 1));
                let passed = serde_json::json!({ "passed": case.passed });
                t.span(tid, &case.name, "test", start, case.seconds, passed);
            }
        }
        Trace {
            trace_events: t.events,
            display_time_unit: "ms".into(),
        }
    }

    /// Writes it whole.
    pub fn write(&self, path: &Utf8Path) -> crate::Result<()> {
        let json = serde_json::to_string(self).expect("a trace serialises");
        let json = crate::secrets::redact(&json);
        crate::write_whole(path, json.as_bytes()).map_err(crate::Error::io(path))
    }

    pub fn read(path: &Utf8Path) -> crate::Result<Trace> {
        let text = std::fs::read(path).map_err(crate::Error::io(path))?;
        serde_json::from_slice(&text)
            .map_err(|e| crate::Error::BadInput(format!("{path}: not a trace: {e}")))
    }

    /// Each track's name, by id.
    pub fn tracks(&self) -> BTreeMap<u32, String> {
        self.trace_events
            .iter()
            .filter(|e| e.ph == "M")
            .filter_map(|e| Some((e.tid, e.args["name"].as_str()?.to_owned())))
            .collect()
    }
}

/// Events being gathered, with times from the run's start.
struct Tracks {
    zero: f64,
    named: BTreeMap<u32, ()>,
    events: Vec<Event>,
}

impl Tracks {
    fn new(zero: f64) -> Tracks {
        Tracks {
            zero,
            named: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    fn name(&mut self, tid: u32, name: &str) {
        if self.named.insert(tid, ()).is_none() {
            self.events.push(Event {
                name: "thread_name".into(),
                cat: String::new(),
                ph: "M".into(),
                ts: 0.0,
                dur: None,
                pid: 1,
                tid,
                args: serde_json::json!({ "name": name }),
            });
        }
    }

    /// A span from `start` (seconds since the epoch) lasting `seconds`.
    fn span(
        &mut self,
        tid: u32,
        name: &str,
        cat: &str,
        start: f64,
        seconds: f64,
        args: serde_json::Value,
    ) {
        self.events.push(Event {
            name: name.to_owned(),
            cat: cat.to_owned(),
            ph: "X".into(),
            ts: ((start - self.zero) * 1e6).max(0.0).round(),
            dur: Some((seconds * 1e6).max(0.0).round()),
            pid: 1,
            tid,
            args,
        });
    }
}
