//! Nothing the tool writes shows a secret. A secret is the value of an
//! environment variable whose name looks secret (`*PASSWORD*`, `*SECRET*`,
//! `*TOKEN*`, `*KEY*`): the services' as Compose resolves them, the config's
//! (`compose.env`, `tests.env`) and this process's own (a CI's tokens); and
//! the contents of the stack's Compose `secrets:`. Each is registered once
//! found (preflight), and every writer of the run (the printed lines, the
//! report, the trace, the CI's step summary and annotations) passes its
//! text through [`redact`], which shows `***` instead. A container's own log
//! is its output and is kept as it is in the run's `logs/`.
//!
//! The registry is process-wide, as the GitHub runner's masks are: a value
//! found by one phase must not show in a line another prints. A registered
//! value is handed to the hook the CLI sets (under GitHub Actions it prints
//! `::add-mask::`, so the runner masks it in the job's log too).

use std::collections::BTreeSet;
use std::sync::RwLock;

use compose::Stack;

/// What a value is shown as.
pub const SHOWN: &str = "***";

/// Shorter values are not masked: `1`, `yes` or `dev` would blot out
/// every number and word of the output, and guard nothing.
const SHORTEST: usize = 4;

/// Each value with its JSON-escaped form (what the report and the trace
/// hold), made once at registration: `redact` runs on every printed line.
static VALUES: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());
static HOOK: RwLock<Option<fn(&str)>> = RwLock::new(None);

/// Whether a variable of this name holds a secret.
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "TOKEN", "KEY"]
        .iter()
        .any(|w| upper.contains(w))
}

/// Called with each value newly registered (each line of a multi-line one).
pub fn on_new_value(hook: fn(&str)) {
    if let Ok(mut h) = HOOK.write() {
        *h = Some(hook);
    }
}

/// Registers `values` (each line of each, long enough to mean something).
pub fn register<I: IntoIterator<Item = String>>(values: I) {
    let hook = HOOK.read().ok().and_then(|h| *h);
    let Ok(mut known) = VALUES.write() else {
        return;
    };
    for value in values {
        for line in value.lines().map(str::trim).filter(|l| l.len() >= SHORTEST) {
            if known.iter().any(|(k, _)| k == line) {
                continue;
            }
            let escaped = serde_json::to_string(line).unwrap_or_default();
            known.push((line.to_owned(), escaped.trim_matches('"').to_owned()));
            if let Some(hook) = hook {
                hook(line);
            }
        }
    }
    // Longest first: a value that holds another is replaced whole.
    known.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
}

/// `text` with every registered value, and its JSON-escaped form, as `***`.
pub fn redact(text: &str) -> String {
    let Ok(known) = VALUES.read() else {
        return text.to_owned();
    };
    let mut out = text.to_owned();
    for (v, escaped) in known.iter() {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), SHOWN);
        }
        if escaped != v && out.contains(escaped.as_str()) {
            out = out.replace(escaped.as_str(), SHOWN);
        }
    }
    out
}

/// The secrets of a run: the stack's services' environment and `secrets:`,
/// the config's variables, this process's environment.
pub fn of_run(config: &crate::Config, stack: &Stack) -> Vec<String> {
    let mut values = BTreeSet::new();
    let mut named = |name: &str, value: &str| {
        if secret_name(name) {
            values.insert(value.to_owned());
        }
    };
    for (name, value) in std::env::vars() {
        named(&name, &value);
    }
    for (name, value) in config.compose.env.iter().chain(&config.tests.env) {
        named(name, value);
    }
    let services = stack.config["services"].as_object().into_iter().flatten();
    for (_, service) in services {
        let env = service["environment"].as_object().into_iter().flatten();
        for (name, value) in env {
            if let Some(v) = value.as_str() {
                named(name, v);
            }
        }
    }
    let secrets = stack.config["secrets"].as_object().into_iter().flatten();
    for (_, secret) in secrets {
        if let Some(file) = secret["file"].as_str()
            && let Ok(text) = std::fs::read_to_string(file)
        {
            values.insert(text);
        }
        if let Some(var) = secret["environment"].as_str()
            && let Ok(v) = std::env::var(var)
        {
            values.insert(v);
        }
    }
    values.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_shown_as_stars_wherever_they_are() {
        assert!(secret_name("POSTGRES_PASSWORD") && secret_name("api_token"));
        assert!(secret_name("AWS_SECRET_ACCESS_KEY") && secret_name("SSH_KEY_FILE"));
        assert!(!secret_name("DATABASE_URL") && !secret_name("PORT"));
        register([
            "hunter2-longer".to_owned(),
            "ab".to_owned(),
            "two\nlines-here".to_owned(),
        ]);
        assert_eq!(
            redact("password=hunter2-longer; short ab; two and lines-here"),
            "password=***; short ab; two and ***",
            "each line of a multi-line value; too short ones left"
        );
        register([r#"q"uote\d"#.to_owned()]);
        let json = serde_json::to_string(r#"x q"uote\d y"#).unwrap();
        assert_eq!(redact(&json), r#""x *** y""#, "in JSON text too");
    }
}
