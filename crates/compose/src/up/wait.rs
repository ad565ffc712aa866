//! The wait across `up`'s levels: each level's `compose up` started (unless
//! nothing changed), the project's containers listed and judged until every
//! service in scope is ready, one fails, or the time is up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use process::{GroupOptions, GroupOutput};

use super::logs::{Follower, Rate};
use super::{POLL_INTERVAL, StartPlan, UP_QUIET, UpEvent, UpOptions, UpSummary};
use crate::error::{Error, Result};
use crate::project::{Container, Project};
use crate::readiness::{HealthChecks, Readiness, being_replaced};

/// The wait across `up`'s levels: what ran before `up`, which services are
/// settled, when each got ready, and the last listing of the containers.
pub(super) struct Wait<'a> {
    project: &'a Project,
    start: Instant,
    /// `start` on the wall clock, which dates the services' log lines.
    started_at: std::time::SystemTime,
    /// The containers before `up`: their states, and why one was replaced.
    found: Vec<Container>,
    /// A running container holds files that changed since: recreate all.
    stale: bool,
    /// Nothing changed and the same containers run: no `up`, only judged.
    pub(super) skip_up: bool,
    pub(super) plan: StartPlan,
    checks: HealthChecks,
    settled: BTreeSet<String>,
    ready_at: BTreeMap<String, f64>,
    /// Who was last said to be awaited.
    last: Vec<(String, String)>,
    containers: Vec<Container>,
    /// The services' log lines, from the first `up` on.
    follower: Option<Follower>,
    rate: Rate,
    /// [`UpOptions::rejudge`].
    rejudge: Option<BTreeMap<String, Option<std::time::SystemTime>>>,
}

/// Why `new` replaced `old`, a container of the same service, as their
/// labels tell (Compose records the image ID and a hash of the config).
fn replaced_why(old: &Container, new: &Container, stale: bool) -> String {
    const IMAGE: &str = "com.docker.compose.image";
    const CONFIG: &str = "com.docker.compose.config-hash";
    if old.label(IMAGE) != new.label(IMAGE) {
        "its image changed".into()
    } else if old.label(CONFIG) != new.label(CONFIG) {
        "its compose config changed".into()
    } else if stale {
        "the files it mounts changed since it started (certificates)".into()
    } else {
        "Compose replaced it".into()
    }
}

impl<'a> Wait<'a> {
    pub(super) fn new(
        project: &'a Project,
        opts: &UpOptions,
        found: &[Container],
    ) -> Result<Wait<'a>> {
        let before: BTreeMap<String, String> = found
            .iter()
            .map(|c| (c.id.clone(), c.state.clone()))
            .collect();
        let stale = match opts.mounted_files_changed {
            Some(changed) => project.any_running_started_before(&before, changed)?,
            None => false,
        };
        let conditions: BTreeMap<String, String> = found
            .iter()
            .map(|c| (c.id.clone(), c.condition()))
            .collect();
        let skip_up = opts.rejudge.is_some()
            || (!stale
                && opts.only.is_none()
                && !conditions.is_empty()
                && opts.unchanged.as_ref() == Some(&conditions));
        let mut plan = project.start_plan(&opts.probes);
        if skip_up {
            plan.levels = vec![project.stack.services.keys().cloned().collect()];
        }
        if let Some(only) = &opts.only {
            plan.levels = vec![only.clone()];
        }
        if let Some(rejudge) = &opts.rejudge {
            plan.levels = vec![rejudge.keys().cloned().collect()];
        }
        Ok(Wait {
            project,
            start: Instant::now(),
            started_at: std::time::SystemTime::now(),
            found: found.to_vec(),
            stale,
            skip_up,
            plan,
            checks: HealthChecks::default(),
            settled: BTreeSet::new(),
            ready_at: BTreeMap::new(),
            last: Vec::new(),
            containers: Vec::new(),
            follower: None,
            rate: Rate::default(),
            rejudge: opts.rejudge.clone(),
        })
    }

    /// A container's state before `up`; `None` for one `up` made.
    fn state_before(&self, id: &str) -> Option<&str> {
        self.found
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.state.as_str())
    }

    /// `compose up` of level `i`.
    fn up_command(&self, i: usize, opts: &UpOptions) -> process::Cmd {
        let mut args: Vec<String> = ["up", "--detach", "--no-build"].map(str::to_owned).into();
        args.extend([
            "--timeout".to_owned(),
            opts.replace_grace.as_secs().to_string(),
        ]);
        if i == 0 && opts.only.is_none() {
            args.push("--remove-orphans".into());
        }
        if self.stale {
            args.push("--force-recreate".into());
        }
        if self.plan.levels.len() > 1 || opts.only.is_some() {
            args.push("--no-deps".into());
            args.extend(self.plan.levels[i].iter().cloned());
        }
        self.project.compose(args)
    }

    /// Starts level `i` (unless `up` is skipped) and waits until each of its
    /// services (and those of the levels before) is ready. Dropping the
    /// running `up` on the way out stops it: nothing outlives the wait.
    pub(super) fn level(
        &mut self,
        i: usize,
        opts: &UpOptions,
        on: &mut dyn FnMut(UpEvent<'_>),
    ) -> Result<()> {
        let up = self.up_command(i, opts);
        let group = GroupOptions {
            capture: true,
            interruptible: true,
        };
        let mut child = match self.skip_up {
            true => None,
            false => Some(up.start_group(&self.project.spec.dir, group)?),
        };
        let level_started = Instant::now();
        // Said at once: the quiet second below asks nothing yet.
        if child.is_some() {
            let starting: Vec<(String, String)> = self.plan.levels[i]
                .iter()
                .map(|s| (s.clone(), "starting".to_owned()))
                .collect();
            on(UpEvent::Waiting(&starting));
            self.last = starting;
        }
        let mut up_out: Option<GroupOutput> = None;
        loop {
            // `up` and `ps` are both heavy on the CPU: for `up`'s first
            // second only wait for it (a kept stack's `up` mostly ends by then).
            while let Some(c) = &mut child {
                if let Some(out) = c.try_wait()? {
                    up_out = Some(out);
                    child = None;
                    break;
                }
                if level_started.elapsed() >= UP_QUIET || process::interrupt::is_requested() {
                    break;
                }
                self.show(on);
                std::thread::sleep(Duration::from_millis(20));
            }
            self.show(on);
            if process::interrupt::is_requested() {
                return Err(Error::Interrupted);
            }
            let Some(containers) = self.list(opts)? else {
                std::thread::sleep(POLL_INTERVAL);
                continue;
            };
            self.containers = containers;
            // The services' lines, from each container `up` made or started
            // (a nicety: without it the wait is the same).
            if opts.logs && (!self.skip_up || opts.rejudge.is_some()) {
                let since = opts
                    .logs_since
                    .unwrap_or(self.started_at - Duration::from_secs(1));
                let follower = self.follower.get_or_insert_with(|| Follower::new(since));
                // Judging again, only the services judged.
                let followed: Vec<Container> = self
                    .containers
                    .iter()
                    .filter(|c| {
                        opts.rejudge
                            .as_ref()
                            .is_none_or(|r| r.contains_key(&c.service))
                    })
                    .cloned()
                    .collect();
                follower.follow(self.project, &followed);
            }
            let states = self.judge(i, up_out.is_some());
            // A service that failed explains more than Compose's own error does.
            if let Some((service, detail)) = states.iter().find_map(|(s, r)| match r {
                Readiness::Failed(why) => Some((s.clone(), why.clone())),
                _ => None,
            }) {
                drop(child);
                let words = self.project.last_words(&service, &self.containers);
                return Err(Error::ServiceFailed {
                    service,
                    detail: format!("{detail}{words}"),
                });
            }
            if let Some(out) = &up_out
                && !out.success()
            {
                return Err(self.project.up_failed(&up, out, &self.containers));
            }
            for (service, r) in &states {
                if *r == Readiness::Ready && !self.ready_at.contains_key(service) {
                    let at = self.start.elapsed().as_secs_f64();
                    self.ready_at.insert(service.clone(), at);
                }
            }
            let pending: Vec<(String, String)> = states
                .into_iter()
                .filter_map(|(s, r)| match r {
                    Readiness::Waiting(why) => Some((s, why)),
                    _ => None,
                })
                .collect();
            if (self.skip_up || up_out.is_some()) && pending.is_empty() {
                self.settled.extend(self.plan.levels[i].iter().cloned());
                return Ok(());
            }
            if self.start.elapsed() > opts.timeout {
                let list = pending
                    .iter()
                    .map(|(s, w)| format!("{s} ({w})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::NotReady {
                    waiting: list,
                    seconds: opts.timeout.as_secs(),
                });
            }
            if pending != self.last && !pending.is_empty() {
                on(UpEvent::Waiting(&pending));
                self.last = pending;
            }
            // `ps` itself takes ~0.1 s: together a state change is seen within ~0.2 s.
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The lines the services printed since the last look, of those not
    /// ready yet and within their rate; then a poll.
    fn show(&mut self, on: &mut dyn FnMut(UpEvent<'_>)) {
        if let Some(follower) = &self.follower {
            let lines = follower.take();
            let now = Instant::now();
            for line in lines {
                let service = line.service;
                // Quiet once ready (what it printed before is shown): its
                // lines are in the run's logs.
                let ready = self
                    .ready_at
                    .get(&service)
                    .map(|s| self.started_at + Duration::from_secs_f64(*s));
                if ready.is_some_and(|r| line.at.is_none_or(|at| at > r)) {
                    continue;
                }
                if let Some(held) = self.rate.admit(&service, now) {
                    if held > 0 {
                        on(UpEvent::Held {
                            service: &service,
                            count: held,
                        });
                    }
                    on(UpEvent::Log {
                        service: &service,
                        line: &line.text,
                    });
                }
            }
        }
        on(UpEvent::Poll);
    }

    /// Says the lines still held back (the wait is over).
    pub(super) fn flush(&mut self, on: &mut dyn FnMut(UpEvent<'_>)) {
        self.show(on);
        for (service, count) in self.rate.held() {
            on(UpEvent::Held {
                service: &service,
                count,
            });
        }
    }

    /// The project's containers now; `None` for a listing to try again.
    fn list(&mut self, opts: &UpOptions) -> Result<Option<Vec<Container>>> {
        // Skipping `up`, the listing made before is still current (once);
        // not after a restart or a sync.
        if self.skip_up && self.containers.is_empty() && opts.rejudge.is_none() {
            return Ok(Some(self.found.clone()));
        }
        // Judging again: one `docker inspect` of the judged services'
        // containers (a container gone: the project's listing instead).
        if let Some(rejudge) = &opts.rejudge {
            let (judged, others): (Vec<&Container>, Vec<&Container>) = self
                .found
                .iter()
                .partition(|c| rejudge.contains_key(&c.service));
            let ids: Vec<String> = judged.iter().map(|c| c.id.clone()).collect();
            if let Some(now) = self.project.inspect(&ids) {
                return Ok(Some(others.into_iter().cloned().chain(now).collect()));
            }
        }
        // Compose lists the project's containers, then inspects each: one
        // that `up` replaces in between is "No such container" for this
        // poll only (seen while `up` created a new project's containers).
        match self.project.ps() {
            Err(Error::Failed { stderr, .. })
                if stderr.contains("No such container") && self.start.elapsed() < opts.timeout =>
            {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// Each service of the levels up to `i`, judged on the last listing;
    /// `up_done`: the level's `up` has returned.
    fn judge(&self, i: usize, up_done: bool) -> Vec<(String, Readiness)> {
        let judged: BTreeSet<&str> = self.plan.levels[..=i]
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let before = |c: &Container| self.state_before(&c.id);
        let up_running = !up_done && !self.skip_up;
        let fresh = |c: &Container| {
            !(up_running && being_replaced(before(c), &c.state))
                && (self.settled.contains(&c.service)
                    || self.skip_up
                    || up_done
                    || before(c) != Some(c.state.as_str()))
        };
        // A container that ran before `up` keeps its old log: a line from
        // an earlier start must not count as ready now.
        let restarted = |c: &Container| {
            self.rejudge
                .as_ref()
                .and_then(|r| r.get(&c.service).copied().flatten())
        };
        let since = |c: &Container| match (restarted(c), before(c)) {
            (Some(at), _) => super::unix_secs(at),
            (None, Some("running")) => 0,
            _ => super::unix_secs(self.started_at).saturating_sub(1),
        };
        self.project.readiness(
            &self.containers,
            &self.plan.probes,
            &self.checks,
            &judged,
            fresh,
            since,
        )
    }

    pub(super) fn summary(self, repaired_networks: Vec<String>, killed: Vec<String>) -> UpSummary {
        let mut summary = UpSummary {
            seconds: self.start.elapsed().as_secs_f64(),
            ready_s: self.ready_at.clone(),
            levels: if self.skip_up {
                0
            } else {
                self.plan.levels.len()
            },
            unchanged: self.skip_up,
            repaired_networks,
            killed,
            conditions: self
                .containers
                .iter()
                .map(|c| (c.id.clone(), c.condition()))
                .collect(),
            checks_run_here: self.checks.used(),
            checks_left_to_docker: self.checks.unusable.borrow().clone().into_iter().collect(),
            ..UpSummary::default()
        };
        let judged: BTreeSet<&String> = self.plan.levels.iter().flatten().collect();
        for c in self
            .containers
            .iter()
            .filter(|c| judged.contains(&c.service))
        {
            if self.state_before(&c.id).is_none()
                && let Some(old) = self.found.iter().find(|o| o.service == c.service)
            {
                summary
                    .recreated
                    .insert(c.service.clone(), replaced_why(old, c, self.stale));
            }
            match self.state_before(&c.id) {
                // No `up` ran: an exited one-shot was left as it was too.
                _ if self.skip_up => summary.reused += 1,
                None => summary.created += 1,
                Some("running") => summary.reused += 1,
                Some(_) => summary.started += 1,
            }
        }
        summary.containers = self.containers;
        summary
    }
}
