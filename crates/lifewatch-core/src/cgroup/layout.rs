//! Layout detection: cgroup v1, v2 or hybrid, from /proc/self/mountinfo (or a fake tree
//! under a `cgroupRoot` for unit tests), and a process's cgroups from /proc/<pid>/cgroup.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use procfs_core::process::MountInfos;
use procfs_core::{FromBufRead, ProcessCGroups};

use crate::error::{Code, Error, Result, SysResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    V1,
    V2,
    Hybrid,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::V1 => "v1",
            Mode::V2 => "v2",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// One mounted hierarchy: where it is mounted and which part of it (`root`, non-`/`
/// inside a cgroup namespace or a bind mount) that mount shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub root: String,
}

impl Hierarchy {
    /// The directory of a cgroup given as its path inside the hierarchy (as
    /// /proc/<pid>/cgroup writes it), or `None` when this mount does not show it.
    pub fn dir_of(&self, hierarchy_path: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let rest = hierarchy_path.strip_prefix(root)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        Some(self.mount.join(rest.trim_start_matches('/')))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The cgroup2 mount, when there is one.
    pub unified: Option<Hierarchy>,
    /// v1 hierarchies by controller (`memory`, `pids`, `cpu`, `name=systemd`...); co-mounted
    /// controllers (`cpu,cpuacct`) each point at the same hierarchy.
    pub v1: BTreeMap<String, Hierarchy>,
    /// Built from a `cgroupRoot` test tree: its files are not on cgroupfs, so the
    /// filesystem-magic check is off.
    pub fake: bool,
}

impl Layout {
    pub fn detect() -> Result<Layout> {
        let f =
            std::fs::File::open("/proc/self/mountinfo").sys("open", "reading the mount table")?;
        Self::from_mountinfo(std::io::BufReader::new(f))
    }

    pub fn from_mountinfo(r: impl BufRead) -> Result<Layout> {
        let mounts = MountInfos::from_buf_read(r)
            .map_err(|e| Error::new(Code::Io, format!("parsing /proc/self/mountinfo: {e}")))?;
        let mut layout = Layout {
            unified: None,
            v1: BTreeMap::new(),
            fake: false,
        };
        for m in &mounts {
            let h = Hierarchy {
                mount: m.mount_point.clone(),
                root: m.root.clone(),
            };
            match m.fs_type.as_str() {
                // The first mount of a hierarchy wins; later ones are bind mounts of it.
                "cgroup2" if layout.unified.is_none() => layout.unified = Some(h),
                "cgroup" => {
                    for (opt, value) in &m.super_options {
                        let name = match (opt.as_str(), value) {
                            ("name", Some(v)) => format!("name={v}"),
                            (o, None) if is_controller(o) => o.to_string(),
                            _ => continue,
                        };
                        layout.v1.entry(name).or_insert_with(|| h.clone());
                    }
                }
                _ => {}
            }
        }
        if layout.unified.is_none() && layout.v1.is_empty() {
            return Err(Error::new(
                Code::UnsupportedKernel,
                "no cgroup filesystem is mounted (no cgroup or cgroup2 entry in /proc/self/mountinfo)",
            ));
        }
        Ok(layout)
    }

    /// A test tree laid out like /sys/fs/cgroup: `root/cgroup.controllers` makes it v2;
    /// otherwise each subdirectory is a v1 hierarchy named by its controllers
    /// (`memory`, `cpu,cpuacct`) and `root/unified` is the cgroup2 part of a hybrid.
    pub fn from_root(root: &Path) -> Result<Layout> {
        let at = |p: PathBuf| Hierarchy {
            mount: p,
            root: "/".into(),
        };
        let mut layout = Layout {
            unified: None,
            v1: BTreeMap::new(),
            fake: true,
        };
        if root.join("cgroup.controllers").is_file() {
            layout.unified = Some(at(root.to_path_buf()));
            return Ok(layout);
        }
        let entries = std::fs::read_dir(root)
            .sys("opendir", format!("reading cgroupRoot {}", root.display()))
            .map_err(|e| e.with_path(root).with_code(Code::InvalidArgument))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !path.is_dir() {
                continue;
            }
            if name == "unified" && path.join("cgroup.controllers").is_file() {
                layout.unified = Some(at(path));
            } else {
                for c in name.split(',').filter(|c| is_controller(c)) {
                    layout.v1.insert(c.to_string(), at(path.clone()));
                }
            }
        }
        if layout.unified.is_none() && layout.v1.is_empty() {
            return Err(Error::invalid(format!(
                "cgroupRoot {} holds no cgroup hierarchy",
                root.display()
            ))
            .with_path(root));
        }
        Ok(layout)
    }

    pub fn mode(&self) -> Mode {
        match (self.unified.is_some(), self.v1.is_empty()) {
            (true, true) => Mode::V2,
            (false, _) => Mode::V1,
            (true, false) => Mode::Hybrid,
        }
    }

    /// The v1 hierarchy of a controller, or a typed error naming what is missing.
    pub fn v1(&self, controller: &str) -> Result<&Hierarchy> {
        self.v1.get(controller).ok_or_else(|| {
            Error::new(
                Code::UnsupportedKernel,
                format!("no cgroup v1 {controller} hierarchy is mounted"),
            )
        })
    }

    pub fn unified(&self) -> Result<&Hierarchy> {
        self.unified.as_ref().ok_or_else(|| {
            Error::new(
                Code::UnsupportedKernel,
                "no cgroup2 (unified) hierarchy is mounted",
            )
        })
    }

    /// Which cgroups a process is in, as directories of this layout.
    pub fn cgroups_of(&self, pid: i32) -> Result<ProcessCgroups> {
        let path = format!("/proc/{pid}/cgroup");
        let f = std::fs::File::open(&path)
            .sys("open", format!("reading the cgroups of pid {pid}"))
            .map_err(|e| match e.errno {
                Some(libc::ENOENT) => e.with_code(Code::NoSuchProcess),
                _ => e,
            })?;
        self.parse_cgroups(std::io::BufReader::new(f))
    }

    pub fn parse_cgroups(&self, r: impl BufRead) -> Result<ProcessCgroups> {
        let groups = ProcessCGroups::from_buf_read(r)
            .map_err(|e| Error::new(Code::Io, format!("parsing /proc/<pid>/cgroup: {e}")))?;
        let mut out = ProcessCgroups::default();
        for g in groups {
            if g.hierarchy == 0 && g.controllers.is_empty() {
                out.unified_path = Some(g.pathname.clone());
                out.unified = self.unified.as_ref().and_then(|h| h.dir_of(&g.pathname));
                continue;
            }
            for c in &g.controllers {
                if let Some(dir) = self.v1.get(c).and_then(|h| h.dir_of(&g.pathname)) {
                    out.v1.insert(c.clone(), dir);
                }
            }
        }
        Ok(out)
    }
}

/// A process's cgroups: the unified one and one per v1 controller, as directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCgroups {
    /// The path inside the unified hierarchy (`0::/...`), even when that hierarchy is not
    /// mounted here.
    pub unified_path: Option<String>,
    pub unified: Option<PathBuf>,
    pub v1: BTreeMap<String, PathBuf>,
}

fn is_controller(name: &str) -> bool {
    matches!(
        name,
        "memory"
            | "pids"
            | "cpu"
            | "cpuacct"
            | "cpuset"
            | "freezer"
            | "blkio"
            | "io"
            | "devices"
            | "net_cls"
            | "net_prio"
            | "perf_event"
            | "hugetlb"
            | "rdma"
            | "misc"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_from_mountinfo() {
        let l = Layout::from_mountinfo(HYBRID.as_bytes()).unwrap();
        assert_eq!(l.mode(), Mode::Hybrid);
        assert_eq!(
            l.unified().unwrap().mount,
            Path::new("/sys/fs/cgroup/unified")
        );
        assert_eq!(
            l.v1("memory").unwrap().mount,
            Path::new("/sys/fs/cgroup/memory")
        );
        assert_eq!(l.v1("cpuacct").unwrap(), l.v1("cpu").unwrap());
        assert!(l.v1.contains_key("name=systemd"));
        assert_eq!(l.v1("freezer").unwrap_err().code, Code::UnsupportedKernel);
    }

    #[test]
    fn pure_v2_and_pure_v1() {
        let v2 = "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            Layout::from_mountinfo(v2.as_bytes()).unwrap().mode(),
            Mode::V2
        );
        let v1: String = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        let l = Layout::from_mountinfo(v1.as_bytes()).unwrap();
        assert_eq!(l.mode(), Mode::V1);
        assert_eq!(l.unified().unwrap_err().code, Code::UnsupportedKernel);
        let none = "22 1 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(
            Layout::from_mountinfo(none.as_bytes()).unwrap_err().code,
            Code::UnsupportedKernel
        );
    }

    #[test]
    fn process_cgroups_map_to_directories() {
        let l = Layout::from_mountinfo(HYBRID.as_bytes()).unwrap();
        let text = "9:name=systemd:/\n4:memory:/process_api/8e29\n2:cpu,cpuacct:/a\n0::/x/y\n";
        let g = l.parse_cgroups(text.as_bytes()).unwrap();
        assert_eq!(g.unified, Some(PathBuf::from("/sys/fs/cgroup/unified/x/y")));
        assert_eq!(
            g.v1["memory"],
            Path::new("/sys/fs/cgroup/memory/process_api/8e29")
        );
        assert_eq!(g.v1["cpuacct"], Path::new("/sys/fs/cgroup/cpu,cpuacct/a"));
        assert_eq!(g.v1["name=systemd"], Path::new("/sys/fs/cgroup/systemd"));
    }

    #[test]
    fn namespaced_mount_roots() {
        let h = Hierarchy {
            mount: "/sys/fs/cgroup".into(),
            root: "/kubepods/pod1".into(),
        };
        assert_eq!(
            h.dir_of("/kubepods/pod1/c1"),
            Some(PathBuf::from("/sys/fs/cgroup/c1"))
        );
        assert_eq!(
            h.dir_of("/kubepods/pod1"),
            Some(PathBuf::from("/sys/fs/cgroup/"))
        );
        assert_eq!(h.dir_of("/kubepods/pod10"), None);
        assert_eq!(h.dir_of("/other"), None);
    }

    #[test]
    fn fake_trees() {
        let t = std::env::temp_dir().join(format!("lw-layout-{}", std::process::id()));
        std::fs::create_dir_all(t.join("memory")).unwrap();
        std::fs::create_dir_all(t.join("unified")).unwrap();
        std::fs::write(t.join("unified/cgroup.controllers"), "").unwrap();
        let l = Layout::from_root(&t).unwrap();
        assert!(l.fake);
        assert_eq!(l.mode(), Mode::Hybrid);
        std::fs::write(t.join("cgroup.controllers"), "memory pids").unwrap();
        assert_eq!(Layout::from_root(&t).unwrap().mode(), Mode::V2);
        std::fs::remove_dir_all(&t).unwrap();
        assert_eq!(
            Layout::from_root(&t).unwrap_err().code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn this_machine() {
        let l = Layout::detect().unwrap();
        let mine = l.cgroups_of(std::process::id() as i32).unwrap();
        assert!(mine.unified_path.is_some() || !mine.v1.is_empty());
        assert_eq!(
            l.cgroups_of(i32::MAX).unwrap_err().code,
            Code::NoSuchProcess
        );
    }
}
