//! Prometheus' own parser and linter as the judge of a metrics exposition.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on an exposition (fails the test naming the
/// Debian package when promtool is missing). Debian's promtool (2.42) lints
/// with the Prometheus text-format rules, under which an OpenMetrics counter
/// family `x` (samples `x_total`) reads as a family `x_total` without help
/// text; that one finding is accepted when `x` has HELP and is TYPEd
/// counter. Anything else (a parse error, another lint) is an error.
pub fn check_metrics(exposition: &str) -> Result<(), String> {
    let promtool = crate::require("promtool", "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(exposition.as_bytes())
        .map_err(|e| format!("promtool stdin: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Ok(()),
        // 3: lint problems only (1 is a parse error).
        Some(3) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let family = line
                    .strip_suffix("_total no help text")
                    .ok_or_else(|| format!("promtool: {line}"))?;
                if !exposition.contains(&format!("# HELP {family} "))
                    || !exposition.contains(&format!("# TYPE {family} counter"))
                {
                    return Err(format!("promtool: {line}"));
                }
            }
            Ok(())
        }
        _ => Err(format!("promtool check metrics failed: {text}")),
    }
}
