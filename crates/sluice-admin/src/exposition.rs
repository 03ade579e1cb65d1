//! The body of `GET /metrics`: every family of the run's registry
//! (`sluice_*`), `sluice_build_info`, and the process families.

use std::fmt::Write;

use sluice_core::Registry;

/// The commit sluice was built from (`SLUICE_COMMIT` at build time, set by
/// the build script from git), else `unknown`.
const COMMIT: &str = match option_env!("SLUICE_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Prometheus text exposition 0.0.4.
pub fn render(registry: &Registry) -> String {
    let mut out = registry.render_prometheus();
    let _ = writeln!(
        out,
        "# HELP sluice_build_info The sluice build: version and commit (always 1).\n# TYPE sluice_build_info gauge\nsluice_build_info{{version=\"{}\",commit=\"{COMMIT}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    crate::process::render(&mut out);
    out
}
