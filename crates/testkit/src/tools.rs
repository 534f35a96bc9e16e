//! Locating third-party tools on `PATH`, and the policy for when one is missing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Whether a missing tool should fail the test: true when `FLEETPKI_REQUIRE_TOOLS` or `CI`
/// is set (to anything but an empty string, `0` or `false`).
pub fn tools_required() -> bool {
    required_from(|name| std::env::var(name).ok())
}

fn required_from(get: impl Fn(&str) -> Option<String>) -> bool {
    ["FLEETPKI_REQUIRE_TOOLS", "CI"].iter().any(|var| {
        get(var).is_some_and(|v| {
            let v = v.trim();
            !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
        })
    })
}

/// Returns `Some(path)` if `name` is on `PATH`. If it is missing and [`tools_required`],
/// panics with a message naming the tool and `scripts/test.sh`; otherwise prints a skip
/// notice and returns `None`.
pub fn tool(name: &str) -> Option<PathBuf> {
    tool_with(name, tools_required())
}

fn tool_with(name: &str, required: bool) -> Option<PathBuf> {
    match find_on_path(name) {
        Some(path) => Some(path),
        None if required => panic!("{}", missing_message(name)),
        None => {
            eprintln!(
                "SKIP: `{name}` is not on PATH; run scripts/test.sh to install the test tools \
                 (FLEETPKI_REQUIRE_TOOLS=1 or CI makes this a failure)"
            );
            None
        }
    }
}

/// Like [`tool`] but for the runners: a missing tool is an error (or a panic when required),
/// never a skip, so a runner can't pass vacuously.
pub(crate) fn resolve(name: &str) -> anyhow::Result<PathBuf> {
    resolve_with(name, tools_required())
}

fn resolve_with(name: &str, required: bool) -> anyhow::Result<PathBuf> {
    match find_on_path(name) {
        Some(path) => Ok(path),
        None if required => panic!("{}", missing_message(name)),
        None => anyhow::bail!(
            "{}; to skip instead, guard the test with fleetpki_testkit::tool({name:?})",
            missing_message(name)
        ),
    }
}

fn missing_message(name: &str) -> String {
    format!(
        "required test tool `{name}` is not on PATH; run scripts/test.sh, which installs it \
         and puts it on PATH"
    )
}

/// Searches `PATH` for an executable file called `name` (a name containing `/` is checked
/// as given).
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path_var = std::env::var_os("PATH")?;
    find_in(&path_var, name)
}

fn find_in(path_var: &OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn required_policy() {
        assert!(!required_from(env(&[])));
        assert!(required_from(env(&[("CI", "true")])));
        assert!(required_from(env(&[("FLEETPKI_REQUIRE_TOOLS", "1")])));
        assert!(!required_from(env(&[("CI", "false")])));
        assert!(!required_from(env(&[
            ("CI", ""),
            ("FLEETPKI_REQUIRE_TOOLS", "0")
        ])));
    }

    #[test]
    fn finds_executables_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("fake-tool");
        let plain = dir.path().join("not-executable");
        std::fs::write(&exe, "#!/bin/sh\n").expect("write");
        std::fs::write(&plain, "").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
        }
        let path_var =
            std::env::join_paths([Path::new("/nonexistent"), dir.path()]).expect("join_paths");
        assert_eq!(find_in(&path_var, "fake-tool"), Some(exe));
        assert_eq!(find_in(&path_var, "not-executable"), None);
        assert_eq!(find_in(&path_var, "absent"), None);
    }

    const ABSENT: &str = "fleetpki-testkit-no-such-tool";

    #[test]
    fn missing_tool_skips_or_errors_when_not_required() {
        assert_eq!(tool_with(ABSENT, false), None);
        let err = resolve_with(ABSENT, false).expect_err("missing tool is an error");
        assert!(err.to_string().contains(ABSENT), "{err}");
        assert!(resolve_with("sh", false).is_ok());
    }

    #[test]
    #[should_panic(expected = "scripts/test.sh")]
    fn missing_tool_panics_when_required() {
        tool_with(ABSENT, true);
    }

    #[test]
    #[should_panic(expected = "fleetpki-testkit-no-such-tool")]
    fn missing_runner_tool_panics_when_required() {
        let _ = resolve_with(ABSENT, true);
    }

    #[test]
    fn missing_tool_message_names_tool_and_script() {
        let msg = missing_message("lint_pkix_cert");
        assert!(msg.contains("lint_pkix_cert") && msg.contains("scripts/test.sh"));
    }
}
