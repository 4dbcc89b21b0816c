//! The commands of `docs/quickstart.md`, for the tests that run them as written.
//!
//! A test takes a quickstart command by its first words ([`command`]) and runs its very text
//! with bash ([`bash`]), so the quickstart cannot show a command, flag or value that no test
//! runs; `tests/quickstart.rs` checks that every command of the quickstart is taken by a test.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

fn doc() -> String {
    std::fs::read_to_string(repo().join("docs/quickstart.md")).expect("docs/quickstart.md")
}

/// The bodies of the quickstart's fenced blocks of language `lang`.
pub fn blocks(lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc().lines() {
        match current.as_mut() {
            Some(body) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(body));
                current = None;
            }
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None if line.trim() == format!("```{lang}") => current = Some(String::new()),
            None => {}
        }
    }
    blocks
}

/// `line` without a trailing `# comment` (a `#` after white space and outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut previous) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return line[..i].trim_end(),
            _ => {}
        }
        previous = c;
    }
    line.trim_end()
}

/// Every command of the quickstart's `sh` blocks: continuation lines joined (the text keeps
/// its `\` and line breaks, as a shell reads it), comments and blank lines dropped.
pub fn commands() -> Vec<String> {
    let mut commands = Vec::new();
    for block in blocks("sh") {
        let mut pending = String::new();
        for line in block.lines() {
            let line = strip_comment(line);
            if line.trim().is_empty() && pending.is_empty() {
                continue;
            }
            pending.push_str(line);
            if line.ends_with('\\') {
                pending.push('\n');
            } else {
                commands.push(std::mem::take(&mut pending));
            }
        }
        assert!(
            pending.is_empty(),
            "a continued line ends a block: {pending}"
        );
    }
    commands
}

/// The quickstart's one command that begins with `prefix`.
pub fn command(prefix: &str) -> String {
    let found: Vec<String> = commands()
        .into_iter()
        .filter(|c| c.starts_with(prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "docs/quickstart.md should have exactly one command beginning `{prefix}`: {found:?}"
    );
    found.into_iter().next().expect("one")
}

/// The body of the quickstart's one `lang` block that contains `needle`.
pub fn block(lang: &str, needle: &str) -> String {
    let found: Vec<String> = blocks(lang)
        .into_iter()
        .filter(|b| b.contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "docs/quickstart.md should have one {lang} block with {needle}"
    );
    found.into_iter().next().expect("one")
}

/// A directory `dir` holding `name`, a symbolic link to `target`: put it on PATH so a
/// quickstart command's `helm` or `kubectl-krew` is the pinned tool.
pub fn shim(dir: &Path, name: &str, target: &Path) {
    std::fs::create_dir_all(dir).expect("shim dir");
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

/// Makes `dir` look like the repository's root to a quickstart command (its top-level folders
/// linked there) while what the command writes, such as `dist/`, stays in `dir`.
pub fn workdir(dir: &Path) -> &Path {
    std::fs::create_dir_all(dir).expect("work dir");
    for entry in ["controller", "provider", "crds", "examples", "tests"] {
        let link = dir.join(entry);
        if !link.exists() {
            std::os::unix::fs::symlink(repo().join(entry), link).expect("symlink");
        }
    }
    dir
}

/// Runs `script` as `bash -euo pipefail -c` in `dir`, with `path` before PATH and `envs` set.
pub fn bash(script: &str, dir: &Path, path: &[&Path], envs: &[(&str, &OsStr)]) -> Output {
    let mut dirs: Vec<PathBuf> = path.iter().map(|p| p.to_path_buf()).collect();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", std::env::join_paths(dirs).expect("PATH"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("bash runs")
}

/// The directory cargo built this workspace's binaries for `target` into (`None`: the host);
/// the quickstart's `target/release/` and `target/TRIPLE/release/` stand for these in tests,
/// which use the dev profile's builds of the same packages.
pub fn built_dir(target: Option<&str>) -> PathBuf {
    let host = crate::built_binary("kubectl-aigov");
    let debug = host.parent().expect("target/debug").to_path_buf();
    match target {
        None => debug,
        Some(t) => debug.parent().expect("target").join(t).join("debug"),
    }
}

/// `command` with the quickstart's release build paths replaced by this build's (see
/// [`built_dir`]).
pub fn with_built_paths(command: &str) -> String {
    let arm = "aarch64-unknown-linux-gnu";
    command
        .replace(
            &format!("target/{arm}/release/"),
            &format!("{}/", built_dir(Some(arm)).display()),
        )
        .replace(
            "target/release/",
            &format!("{}/", built_dir(None).display()),
        )
}

#[cfg(test)]
mod tests {
    use super::strip_comment;

    #[test]
    fn comments_go_and_quoted_hashes_stay() {
        assert_eq!(strip_comment("a b   # c"), "a b");
        assert_eq!(strip_comment("a 'b # c' d # e"), "a 'b # c' d");
        assert_eq!(strip_comment("a \"#\" b"), "a \"#\" b");
        assert_eq!(strip_comment("x=a#b"), "x=a#b");
    }
}
