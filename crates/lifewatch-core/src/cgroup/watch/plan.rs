//! Which kernel mechanisms serve a cgroup watch (v1 eventfds, v2 inotify, PSI), decided and
//! validated before anything is opened.

use std::path::PathBuf;

use crate::cgroup::layout::{Hierarchy, Layout};
use crate::cgroup::path::CgroupPath;
use crate::cgroup::watch::hub::OomFile;
use crate::cgroup::watch::options::CgroupWatchOptions;
use crate::cgroup::watch::psi::{self, PsiTrigger};
use crate::cgroup::watch::v1_pressure::PressureLevel;
use crate::error::{Code, Error, Result};

/// Which mechanisms serve a watch, decided before anything is opened.
#[derive(Debug)]
pub(crate) struct Plan {
    pub path: CgroupPath,
    /// v1 memory directory (OOM eventfd, pressure level).
    pub v1_dir: Option<PathBuf>,
    pub oom: Option<(OomFile, PathBuf)>,
    /// Unified directory watched through inotify (cgroup.events, memory.events, removal).
    pub inotify_dir: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub pressure: Option<PressureLevel>,
    pub psi: Vec<(PathBuf, PsiTrigger)>,
}

/// The existing directory of `path` in `h`; `None` when it does not exist there.
fn dir_in(path: &CgroupPath, h: &Hierarchy, layout: &Layout) -> Result<Option<PathBuf>> {
    let candidate = path.dir_in(h);
    if candidate.exists() && !candidate.is_dir() {
        return Err(Error::invalid(format!(
            "{} is a file, not a cgroup directory",
            candidate.display()
        ))
        .with_path(candidate));
    }
    match path.existing_dir_in(h, layout) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.code == Code::NoSuchCgroup => Ok(None),
        Err(e) => Err(e),
    }
}

fn unsupported(msg: String) -> Error {
    Error::new(Code::UnsupportedKernel, msg)
}

impl Plan {
    pub(crate) fn make(input: &str, opts: &CgroupWatchOptions, layout: &Layout) -> Result<Plan> {
        if opts.oom == Some(false)
            && opts.events == Some(false)
            && opts.pressure.is_none()
            && opts.psi.is_empty()
        {
            return Err(Error::invalid(format!(
                "watching cgroup {input} for nothing: oom and events are false, and no pressure or psi is asked for"
            )));
        }
        let path = CgroupPath::parse_existing(input, layout)?;
        let name = format!("/{}", path.as_str());
        let pressure = opts
            .pressure
            .as_deref()
            .map(PressureLevel::parse)
            .transpose()?;
        let privileged = psi::privileged();
        for t in &opts.psi {
            t.validate(privileged)?;
        }
        let mem_h = layout.v1.get("memory");
        let v1_dir = match mem_h {
            Some(h) => dir_in(&path, h, layout)?,
            None => None,
        };
        let uni_dir = match &layout.unified {
            Some(h) => dir_in(&path, h, layout)?,
            None => None,
        };
        if v1_dir.is_none() && uni_dir.is_none() {
            return Err(Error::new(
                Code::NoSuchCgroup,
                format!("cgroup {name} does not exist in any hierarchy this monitor watches"),
            ));
        }
        let missing = |what: &str, hierarchy_mounted: bool| {
            if hierarchy_mounted {
                Error::new(
                    Code::NoSuchCgroup,
                    format!("cgroup {name} has no {what} directory"),
                )
            } else {
                unsupported(format!(
                    "{what} is not available on this system (watching {name})"
                ))
            }
        };
        let mut plan = Plan {
            path: path.clone(),
            v1_dir: None,
            oom: None,
            inotify_dir: None,
            events: None,
            pressure: None,
            psi: Vec::new(),
        };
        if opts.oom != Some(false) {
            let v2_file = uni_dir.as_ref().map(|d| {
                d.join(if opts.local {
                    "memory.events.local"
                } else {
                    "memory.events"
                })
            });
            if let Some(d) = &v1_dir {
                plan.oom = Some((OomFile::V1, d.join("memory.oom_control")));
                plan.v1_dir = Some(d.clone());
            } else if let Some(f) = v2_file.filter(|f| f.exists()) {
                plan.oom = Some((OomFile::V2, f));
                plan.inotify_dir = uni_dir.clone();
            } else if opts.oom == Some(true) {
                return Err(match mem_h {
                    Some(_) => missing("v1 memory", true),
                    None => unsupported(format!(
                        "no cgroup v1 memory hierarchy is mounted and cgroup {name} has no memory.events (no v2 memory controller)"
                    )),
                });
            }
        }
        if opts.events != Some(false) {
            match uni_dir.as_ref().filter(|d| d.join("cgroup.events").exists()) {
                Some(d) => {
                    plan.events = Some(d.join("cgroup.events"));
                    plan.inotify_dir = Some(d.clone());
                }
                None if opts.events == Some(true) => {
                    return Err(match (&layout.unified, &uni_dir) {
                        (None, _) => unsupported(
                            "cgroup.events needs the unified (cgroup2) hierarchy, which is not mounted".into(),
                        ),
                        (Some(_), None) => missing("unified", true),
                        (Some(_), Some(_)) => unsupported(format!(
                            "cgroup {name} has no cgroup.events (the root cgroup has none)"
                        )),
                    })
                }
                None => {}
            }
        }
        if let Some(level) = pressure {
            match &v1_dir {
                Some(d) => plan.v1_dir = Some(d.clone()),
                None => return Err(missing("v1 memory", mem_h.is_some())),
            }
            plan.pressure = Some(level);
        }
        for t in &opts.psi {
            let Some(d) = &uni_dir else {
                return Err(missing("unified", layout.unified.is_some()));
            };
            plan.psi.push((psi::file(Some(d), t.resource), *t));
        }
        if plan.oom.is_none()
            && plan.events.is_none()
            && plan.pressure.is_none()
            && plan.psi.is_empty()
        {
            return Err(unsupported(format!(
                "nothing to watch on cgroup {name} with these options on this system"
            )));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(name: &str, v2: bool) -> (PathBuf, Layout) {
        let t = std::env::temp_dir().join(format!("lw-plan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        if v2 {
            std::fs::create_dir_all(t.join("job")).unwrap();
            std::fs::write(t.join("cgroup.controllers"), "memory").unwrap();
            std::fs::write(t.join("job/memory.events"), "oom 0\n").unwrap();
            std::fs::write(t.join("job/cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
            std::fs::write(t.join("job/memory.pressure"), "").unwrap();
        } else {
            std::fs::create_dir_all(t.join("memory/job")).unwrap();
            std::fs::create_dir_all(t.join("unified/job")).unwrap();
            std::fs::write(t.join("unified/cgroup.controllers"), "").unwrap();
            std::fs::write(t.join("unified/job/cgroup.events"), "populated 0\n").unwrap();
            std::fs::create_dir_all(t.join("memory/only-v1")).unwrap();
        }
        std::fs::write(t.join("regular"), "").unwrap();
        let l = Layout::from_root(&t).unwrap();
        (t, l)
    }

    fn o() -> CgroupWatchOptions {
        CgroupWatchOptions::default()
    }

    #[test]
    fn plans_v2() {
        let (t, l) = tree("v2", true);
        let p = Plan::make("job", &o(), &l).unwrap();
        assert_eq!(p.oom.as_ref().unwrap().0, OomFile::V2);
        assert!(p.events.is_some());
        assert_eq!(p.inotify_dir, Some(t.join("job")));
        let local = Plan::make(
            "job",
            &CgroupWatchOptions {
                local: true,
                oom: Some(true),
                ..o()
            },
            &l,
        );
        assert_eq!(
            local.unwrap_err().code,
            Code::UnsupportedKernel,
            "no memory.events.local in this tree"
        );
        let pl = Plan::make(
            "job",
            &CgroupWatchOptions {
                pressure: Some("low".into()),
                ..o()
            },
            &l,
        );
        assert_eq!(pl.unwrap_err().code, Code::UnsupportedKernel);
        let trig = PsiTrigger {
            resource: psi::Resource::Memory,
            full: false,
            stall_us: 100_000,
            window_us: 2_000_000,
        };
        let p = Plan::make(
            "job",
            &CgroupWatchOptions {
                psi: vec![trig],
                ..o()
            },
            &l,
        )
        .unwrap();
        assert_eq!(p.psi[0].0, t.join("job/memory.pressure"));
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn plans_hybrid() {
        let (t, l) = tree("hy", false);
        let p = Plan::make("job", &o(), &l).unwrap();
        assert_eq!(p.oom.as_ref().unwrap().0, OomFile::V1);
        assert_eq!(p.v1_dir, Some(t.join("memory/job")));
        assert_eq!(p.events, Some(t.join("unified/job/cgroup.events")));
        let p = Plan::make("only-v1", &o(), &l).unwrap();
        assert!(p.events.is_none(), "events: where available");
        let named = |h: &str| t.join(h).join("only-v1").to_str().unwrap().to_string();
        assert!(Plan::make(&named("memory"), &o(), &l).is_ok());
        let e = Plan::make(&named("unified"), &o(), &l).unwrap_err();
        assert_eq!(e.code, Code::NoSuchCgroup, "{e:?}");
        assert!(e.message.contains("does not exist"), "{}", e.message);
        assert_eq!(
            Plan::make(
                "only-v1",
                &CgroupWatchOptions {
                    events: Some(true),
                    ..o()
                },
                &l
            )
            .unwrap_err()
            .code,
            Code::NoSuchCgroup
        );
        let p = Plan::make(
            "job",
            &CgroupWatchOptions {
                pressure: Some("medium,local".into()),
                oom: Some(false),
                events: Some(false),
                ..o()
            },
            &l,
        )
        .unwrap();
        assert_eq!(p.pressure.unwrap().arg(), "medium,local");
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn bad_input() {
        let (t, l) = tree("bad", false);
        let code = |p: &str, opts: CgroupWatchOptions| Plan::make(p, &opts, &l).unwrap_err().code;
        assert_eq!(code("nope", o()), Code::NoSuchCgroup);
        assert_eq!(code("../x", o()), Code::InvalidArgument);
        assert_eq!(code("memory/../../etc", o()), Code::InvalidArgument);
        assert_eq!(code("/tmp", o()), Code::InvalidArgument);
        assert_eq!(
            code(
                "job",
                CgroupWatchOptions {
                    pressure: Some("huge".into()),
                    ..o()
                }
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                "job",
                CgroupWatchOptions {
                    oom: Some(false),
                    events: Some(false),
                    ..o()
                }
            ),
            Code::InvalidArgument,
            "a watch that asks for nothing is the caller's mistake, not the kernel's"
        );
        std::fs::remove_dir_all(&t).unwrap();
    }
}
