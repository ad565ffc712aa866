//! `cargo e2e clean-context`: list, explain, clean and measure build contexts.

use std::io::Write;

use anyhow::Context as _;
use build_context::clean::{self, Tracked};
use build_context::dockerfile::BuildInputs;
use build_context::{Context, WalkOptions};
use camino::{Utf8Path, Utf8PathBuf};

use crate::exit::Exit;
use crate::flags::CleanContext;

pub fn run(flags: &CleanContext) -> anyhow::Result<()> {
    let (contexts, config) = contexts(flags)?;
    if flags.list {
        let [(ctx, inputs, _)] = &contexts[..] else {
            return Err(Exit::usage(format!(
                "--list needs one context, and the stack has {}: add --context DIR (one of {})",
                contexts.len(),
                names(&contexts)
            ))
            .into());
        };
        return list(ctx, flags.sent.then_some(inputs), flags.json);
    }
    if let Some(path) = &flags.explain {
        let contexts: Vec<Context> = contexts.into_iter().map(|(c, _, _)| c).collect();
        return explain(&contexts, path, flags.json);
    }

    let roots: Vec<Utf8PathBuf> = contexts.iter().map(|(c, _, _)| c.root.clone()).collect();
    let patterns = config
        .as_ref()
        .map_or_else(build_context::artifacts::default_patterns, |c| {
            c.context.artifacts.clone()
        });
    let (repo_root, tracked) = git_tracked(&roots[0], flags.dry_run)?;
    // One walk of each context serves the cleanup plan and the report.
    let walk_all = || -> anyhow::Result<Vec<build_context::Walk>> {
        let mut walks = Vec::new();
        for (ctx, _, _) in &contexts {
            walks.push(ctx.walk(WalkOptions {
                sizes: true,
                into_pruned: true,
            })?);
        }
        Ok(walks)
    };
    let mut walks = walk_all()?;
    let walked: Vec<&build_context::Walk> = walks.iter().collect();
    let plan = clean::plan_from_walks(&repo_root, &roots, &walked, &patterns, &tracked)?;
    let outcome = clean::execute(&plan, flags.dry_run);
    if !flags.dry_run && (outcome.removed_files > 0 || outcome.removed_dirs > 0) {
        walks = walk_all()?;
    }

    let budget = flags
        .budget
        .or_else(|| config.as_ref().and_then(|c| c.budget()));
    let reports: Vec<_> = contexts
        .iter()
        .zip(&walks)
        .map(|((ctx, inputs, services), walk)| {
            let mut r = build_context::analyze(ctx, walk, inputs, budget);
            r.services = services.clone();
            r
        })
        .collect();

    if flags.json {
        // Written as it serializes: the plan can list tens of thousands of files.
        #[derive(serde::Serialize)]
        struct Cleanup<'a> {
            plan: &'a clean::CleanPlan,
            outcome: &'a clean::CleanOutcome,
        }
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            cleanup: Cleanup<'a>,
            contexts: &'a [build_context::ContextReport],
        }
        let doc = Doc {
            cleanup: Cleanup {
                plan: &plan,
                outcome: &outcome,
            },
            contexts: &reports,
        };
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        out.flush()?;
    } else {
        if !plan.files.is_empty() || !plan.kept.is_empty() {
            print!("{plan}");
        }
        println!("{outcome}");
        for r in &reports {
            println!();
            print!("{r}");
        }
    }

    let mut failures = Vec::new();
    for r in &reports {
        if let Some(over) = r.over_budget_message() {
            failures.push(format!("{} {over}", r.context));
        }
        let errors = r
            .lints
            .iter()
            .filter(|l| l.severity == build_context::report::Severity::Error)
            .count();
        if errors > 0 {
            failures.push(format!("{}: {errors} lint error(s), see above", r.context));
        }
    }
    if !failures.is_empty() {
        return Err(Exit::failed(failures.join("\n")).into());
    }
    Ok(())
}

/// `--context`, or every build context of the compose stack in the config,
/// each with what its build hands the Dockerfile (build args, target).
type Contexts = Vec<(Context, BuildInputs, Vec<String>)>;

fn contexts(flags: &CleanContext) -> anyhow::Result<(Contexts, Option<pipeline::Config>)> {
    if let Some(dir) = &flags.context {
        let config = flags
            .config
            .config
            .as_deref()
            .map(|c| crate::load_config_anywhere(Some(c)))
            .transpose()?;
        let mut args = std::collections::BTreeMap::new();
        for a in &flags.build_args {
            let Some((name, value)) = a.split_once('=') else {
                return Err(Exit::usage(format!("--build-arg {a}: write it as NAME=VALUE")).into());
            };
            args.insert(name.to_owned(), Some(value.to_owned()));
        }
        let inputs = BuildInputs {
            args,
            target: flags.target.clone(),
        };
        // Docker's default: the context's own Dockerfile.
        let default = dir.join("Dockerfile");
        let dockerfile = flags
            .dockerfile
            .as_deref()
            .or_else(|| default.is_file().then_some(default.as_path()));
        return Ok((
            vec![(Context::open(dir, dockerfile)?, inputs, Vec::new())],
            config,
        ));
    }
    let config = crate::load_config_anywhere(flags.config.config.as_deref())?;
    let spec = config.project_spec(None);
    let stack =
        compose::Stack::load(&spec).context("reading the compose stack (or pass --context DIR)")?;
    let mut out: Contexts = Vec::new();
    for (service, dir, dockerfile) in stack.build_contexts() {
        let inputs = BuildInputs::from_compose(&stack.service_config(service)["build"]);
        // One report per distinct build; the services that share it are named.
        if let Some((_, _, services)) = out.iter_mut().find(|(c, i, _)| {
            c.root == dir
                && c.dockerfile.as_deref() == Some(dockerfile.as_path())
                && i.args == inputs.args
                && i.target == inputs.target
        }) {
            services.push(service.to_owned());
            continue;
        }
        out.push((
            Context::open(dir, Some(&dockerfile))?,
            inputs,
            vec![service.to_owned()],
        ));
    }
    if out.is_empty() {
        return Err(Exit::usage("the compose stack builds nothing; pass --context DIR").into());
    }
    Ok((out, Some(config)))
}

fn names(contexts: &Contexts) -> String {
    contexts
        .iter()
        .map(|(c, _, _)| c.root.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--list`, and with `sent` only what the build transfers.
fn list(ctx: &Context, sent: Option<&BuildInputs>, json: bool) -> anyhow::Result<()> {
    let paths = match sent {
        None => ctx.list()?,
        Some(inputs) => ctx.list_sent(inputs)?,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        let text: Vec<String> = paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        serde_json::to_writer(&mut out, &text)?;
        writeln!(out)?;
    } else {
        for p in &paths {
            out.write_all(p)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn explain(contexts: &[Context], path: &str, json: bool) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for ctx in contexts {
        let rel = context_relative(&ctx.root, path);
        let e = ctx.explain(&rel)?;
        if json {
            all.push(serde_json::json!({ "context": ctx.root, "ignore_file": ctx.ignore.path, "explanation": e }));
        } else {
            if contexts.len() > 1 {
                print!("{}: ", ctx.root);
            }
            println!("{e}");
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

/// A path the user typed: relative to here when it exists here, else to the context.
fn context_relative(root: &Utf8Path, path: &str) -> String {
    let here = Utf8Path::new(path);
    let resolved = here.canonicalize_utf8().ok().or_else(|| {
        // A path that does not exist: resolve its folder instead.
        let parent = here
            .parent()
            .filter(|p| !p.as_str().is_empty())
            .unwrap_or(Utf8Path::new("."));
        parent
            .canonicalize_utf8()
            .ok()
            .map(|p| p.join(here.file_name().unwrap_or_default()))
    });
    match resolved.as_deref().and_then(|r| r.strip_prefix(root).ok()) {
        Some(rel) if here.exists() || here.is_absolute() => rel.to_string(),
        _ => path.to_owned(),
    }
}

/// The repository root and what git tracks there. Cleaning needs git: it is
/// how a tracked file is told from an artifact.
fn git_tracked(context: &Utf8Path, dry_run: bool) -> anyhow::Result<(Utf8PathBuf, Tracked)> {
    match pipeline::git::tracked(context).context("asking git which files it tracks")? {
        Some(found) => Ok(found),
        None if dry_run => Ok((context.to_owned(), Tracked::default())),
        None => Err(Exit::usage(format!(
            "{context} is not inside a git work tree; clean-context deletes only where git can tell tracked files \
             from artifacts (--dry-run shows what it would delete)"
        ))
        .into()),
    }
}
