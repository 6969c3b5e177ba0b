//! Paths that come from task rows or patches, which are untrusted input: each must be a
//! plain relative path (no absolute path, no `..` or `.` component, no empty component, no
//! NUL) and, where it is resolved on the host, must stay inside its root without passing
//! through a symlink.
//!
//! Why a check of its own instead of `Path::join`: joining an absolute path replaces the
//! base, so a row's `env_repo: "/root"` used to select a host directory outside `--repos`.
//! Canonicalising and comparing prefixes was rejected: it follows the symlinks it should
//! refuse, and races with whoever changes them.

use std::path::{Component, Path, PathBuf};

/// Why a path from a row or a patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} `{value}`: {reason}")]
pub struct UnsafePath {
    /// What the path is (e.g. "env_repo", "test_patch path").
    pub field: String,
    /// The path as given (control characters escaped).
    pub value: String,
    pub reason: String,
}

impl UnsafePath {
    fn new(field: &str, value: &str, reason: &str) -> UnsafePath {
        UnsafePath {
            field: field.to_string(),
            value: value.escape_default().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// `value` as a plain relative path, or why it is not one.
pub fn relative_path<'a>(field: &str, value: &'a str) -> Result<&'a Path, UnsafePath> {
    let fail = |reason: &str| Err(UnsafePath::new(field, value, reason));
    if value.is_empty() {
        return fail("is empty; expected a relative path");
    }
    if value.contains('\0') {
        return fail("contains a NUL byte");
    }
    if value.starts_with('/') {
        return fail("is absolute; expected a path relative to its root");
    }
    if value
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return fail("has an empty, `.` or `..` component; expected a plain relative path");
    }
    let path = Path::new(value);
    debug_assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(path)
}

/// `root/rel` after checking that `rel` is a plain relative path and that no component of
/// it below `root` is a symlink (a missing component is fine: the caller finds out).
pub fn resolve_inside(root: &Path, field: &str, rel: &str) -> Result<PathBuf, UnsafePath> {
    let rel_path = relative_path(field, rel)?;
    let mut path = root.to_path_buf();
    for component in rel_path.components() {
        path.push(component);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(UnsafePath::new(
                    field,
                    rel,
                    &format!(
                        "passes through the symlink {}; symlinks are not followed out of {}",
                        path.display(),
                        root.display()
                    ),
                ))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(root.join(rel_path))
}

/// Whether `id` is a plain name that can name a directory: ASCII letters, digits, `.`, `_`,
/// `+` and `-`, at most 200 bytes, not starting with `.` or `-` (SWE-bench's and
/// SWE-rebench's ids all fit, e.g. `django__django-11099`).
pub fn check_instance_id(id: &str) -> Result<(), String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-');
    if id.is_empty() || id.len() > 200 {
        return Err("expected 1 to 200 characters".into());
    }
    if id.starts_with(['.', '-']) {
        return Err("must not start with `.` or `-` (it names a directory)".into());
    }
    if let Some(c) = id.chars().find(|c| !c.is_ascii() || !allowed(*c as u8)) {
        return Err(format!(
            "contains {:?}; expected only ASCII letters, digits, `.`, `_`, `+` and `-` (it names a directory)",
            c
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for good in ["a", "a/b.py", "tests/data/x.json", "..a/b..", ".gitignore"] {
            assert!(relative_path("f", good).is_ok(), "{good}");
        }
        for bad in ["", "/etc", "a/../b", "..", "./a", "a//b", "a/", "a\0b"] {
            let err = relative_path("env_repo", bad).unwrap_err();
            assert_eq!(err.field, "env_repo", "{bad:?}");
        }
    }

    #[test]
    fn symlinks_below_the_root_are_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("link")).unwrap();
        assert_eq!(
            resolve_inside(root.path(), "f", "real/x").unwrap(),
            root.path().join("real/x")
        );
        let err = resolve_inside(root.path(), "f", "link/passwd").unwrap_err();
        assert!(err.reason.contains("symlink"), "{err}");
    }
}
