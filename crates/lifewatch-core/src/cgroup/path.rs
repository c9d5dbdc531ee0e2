//! Cgroup paths as users give them, checked before anything is opened or written:
//! no `..`, no control characters, never outside the hierarchy, really on cgroupfs.

use std::path::{Component, Path, PathBuf};

use crate::cgroup::layout::{Hierarchy, Layout};
use crate::error::{Code, Error, Result, SysResult};

/// `statfs` magics: v1 hierarchies and the unified one.
pub const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const PATH_MAX: usize = 4096;

/// A cgroup's path inside a hierarchy: `""` is the root, `"lifewatch/job1"` a descendant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CgroupPath(String);

impl CgroupPath {
    /// Accepts a hierarchy-relative path (`lifewatch/job1`, as written in /proc/<pid>/cgroup
    /// with or without the leading `/`) or an absolute directory under one of the layout's
    /// mounts (`/sys/fs/cgroup/memory/lifewatch/job1`).
    pub fn parse(input: &str, layout: &Layout) -> Result<CgroupPath> {
        if input.len() > PATH_MAX {
            return Err(Error::invalid(format!(
                "cgroup path is {} bytes long (at most {PATH_MAX})",
                input.len()
            )));
        }
        if let Some(c) = input.chars().find(|c| c.is_control()) {
            return Err(Error::invalid(format!(
                "cgroup path {input:?} contains the control character {c:?}"
            )));
        }
        let rel = match mount_prefix(input, layout) {
            Some(rest) => rest,
            None if names_other_file(input) => {
                return Err(Error::invalid(format!(
                    "{input} is outside every cgroup hierarchy of this system"
                ))
                .with_path(input))
            }
            None => input,
        };
        let mut parts = Vec::new();
        for c in Path::new(rel).components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::invalid(format!(
                        "cgroup path {input:?} may not contain '..'"
                    )))
                }
            }
        }
        Ok(CgroupPath(parts.join("/")))
    }

    /// `parse` for a cgroup that must exist: an absolute directory must exist itself, not just
    /// the same path in another hierarchy (`/sys/fs/cgroup/cpu/x` where only
    /// `/sys/fs/cgroup/memory/x` exists names nothing).
    pub fn parse_existing(input: &str, layout: &Layout) -> Result<CgroupPath> {
        let path = CgroupPath::parse(input, layout)?;
        let named = Path::new(input);
        if mount_prefix(input, layout).is_some() && named.exists() && !named.is_dir() {
            return Err(
                Error::invalid(format!("{input} is a file, not a cgroup directory"))
                    .with_path(input),
            );
        }
        if mount_prefix(input, layout).is_some() && !named.is_dir() {
            return Err(Error::new(
                Code::NoSuchCgroup,
                format!("cgroup directory {input} does not exist"),
            )
            .with_path(input));
        }
        Ok(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The directory in a hierarchy (which may not exist yet).
    pub fn dir_in(&self, h: &Hierarchy) -> PathBuf {
        h.mount.join(&self.0)
    }

    /// The existing directory in a hierarchy, checked: a directory, on cgroupfs (unless the
    /// layout is a test tree), and still inside the hierarchy once symlinks are resolved.
    pub fn existing_dir_in(&self, h: &Hierarchy, layout: &Layout) -> Result<PathBuf> {
        let dir = self.dir_in(h);
        let real = std::fs::canonicalize(&dir)
            .sys("realpath", format!("cgroup {}", display(self)))
            .map_err(|e| {
                let code = match e.errno {
                    Some(libc::ENOENT) => Code::NoSuchCgroup,
                    // A component is a regular file: that path can never be a cgroup.
                    Some(libc::ENOTDIR) => Code::InvalidArgument,
                    _ => e.code,
                };
                e.with_code(code).with_path(&dir)
            })?;
        let mount = std::fs::canonicalize(&h.mount).unwrap_or_else(|_| h.mount.clone());
        if !real.starts_with(&mount) {
            return Err(Error::invalid(format!(
                "cgroup {} resolves to {}, outside {}",
                display(self),
                real.display(),
                mount.display()
            ))
            .with_path(&dir));
        }
        if !real.is_dir() {
            return Err(Error::invalid(format!(
                "{} is a file, not a cgroup directory",
                real.display()
            ))
            .with_path(&dir));
        }
        if !layout.fake {
            check_cgroupfs(&real)?;
        }
        Ok(real)
    }
}

fn display(p: &CgroupPath) -> String {
    format!("/{}", p.0)
}

/// Strips a mount point from an absolute filesystem path under one of the hierarchies.
fn mount_prefix<'a>(input: &'a str, layout: &Layout) -> Option<&'a str> {
    let mounts = layout
        .unified
        .iter()
        .chain(layout.v1.values())
        .map(|h| &h.mount);
    mounts
        .filter_map(|m| {
            let m = m.to_str()?;
            let rest = input.strip_prefix(m)?;
            (rest.is_empty() || rest.starts_with('/')).then_some(rest)
        })
        .next()
}

/// `/proc/<pid>/cgroup` style paths (`/user.slice/x`) are hierarchy-relative; an absolute
/// path that names an existing file elsewhere (`/tmp/x`, `/proc`), or anything in /sys
/// outside the cgroup mounts, is not a cgroup.
fn names_other_file(input: &str) -> bool {
    input != "/"
        && input.starts_with('/')
        && (input.starts_with("/sys/") || Path::new(input).exists())
}

/// Refuses a directory that is not on a cgroup filesystem (statfs magic).
pub fn check_cgroupfs(dir: &Path) -> Result<()> {
    let st = rustix::fs::statfs(dir).sys("statfs", format!("checking {}", dir.display()))?;
    let magic = st.f_type as i64;
    if magic == CGROUP_SUPER_MAGIC || magic == CGROUP2_SUPER_MAGIC {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{} is not on a cgroup filesystem (statfs magic {magic:#x})",
            dir.display()
        ))
        .with_path(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid() -> Layout {
        let text = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        Layout::from_mountinfo(text.as_bytes()).unwrap()
    }

    #[test]
    fn relative_absolute_and_root() {
        let l = hybrid();
        assert_eq!(
            CgroupPath::parse("lifewatch/a", &l).unwrap().as_str(),
            "lifewatch/a"
        );
        assert_eq!(
            CgroupPath::parse("/lifewatch//a/", &l).unwrap().as_str(),
            "lifewatch/a"
        );
        assert_eq!(
            CgroupPath::parse("/sys/fs/cgroup/memory/lifewatch/a", &l)
                .unwrap()
                .as_str(),
            "lifewatch/a"
        );
        assert!(CgroupPath::parse("/sys/fs/cgroup/unified", &l)
            .unwrap()
            .is_root());
        assert!(CgroupPath::parse("/", &l).unwrap().is_root());
    }

    #[test]
    fn rejects_dangerous_paths() {
        let l = hybrid();
        for bad in [
            "../etc",
            "a/../../b",
            "/sys/fs/cgroup/memory/../../../etc",
            "a\nb",
            "a\0b",
            "/sys/kernel",
            "/proc",
            "/tmp",
        ] {
            let e = CgroupPath::parse(bad, &l).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{bad:?}");
        }
        let long = "a/".repeat(3000);
        assert_eq!(
            CgroupPath::parse(&long, &l).unwrap_err().code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn existing_dir_checks_fs_and_escapes() {
        let l = Layout::detect().unwrap();
        let Some(h) = l.unified.clone().or_else(|| l.v1.values().next().cloned()) else {
            return;
        };
        let root = CgroupPath::parse("", &l).unwrap();
        assert!(root.existing_dir_in(&h, &l).is_ok());
        let missing = CgroupPath::parse("lifewatch-no-such-cgroup", &l).unwrap();
        assert_eq!(
            missing.existing_dir_in(&h, &l).unwrap_err().code,
            Code::NoSuchCgroup
        );
        let tmp = std::env::temp_dir();
        assert_eq!(
            check_cgroupfs(&tmp).unwrap_err().code,
            Code::InvalidArgument
        );
    }
}
