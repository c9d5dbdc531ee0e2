//! Reliability part 8 (stable half): bounded random tests of the /proc/<pid>/stat parser and the
//! cgroup parsers (mountinfo, /proc/<pid>/cgroup, counters, limits) that
//! run everywhere, without nightly. `npm run reliability` (without `--quick`) adds
//! coverage-guided fuzzing with cargo fuzz (crates/lifewatch-core/fuzz) where a nightly
//! toolchain exists.

use lifewatch_core::process::procstat::parse;

/// xorshift64*: deterministic, so a failure names its seed and round.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const COMM_CHARS: &[char] = &[
    'a', 'Z', ' ', '(', ')', ')', '\n', '\t', '0', '9', 'é', '🦀', '\0',
];

fn comm(r: &mut Rng) -> String {
    (0..r.below(16))
        .map(|_| COMM_CHARS[r.below(COMM_CHARS.len() as u64) as usize])
        .collect()
}

/// A well-formed line with random values: the parser must read back exactly those values.
fn line(r: &mut Rng) -> (String, char, u64, i32) {
    let state = ['R', 'S', 'D', 'Z', 'T', 't', 'X', 'I'][r.below(8) as usize];
    let start = r.next() >> r.below(64);
    let exit = (r.next() as i32).wrapping_abs();
    let mut f: Vec<String> = (3..=52).map(|_| r.below(1 << 20).to_string()).collect();
    f[0] = state.to_string();
    f[22 - 3] = start.to_string();
    f[52 - 3] = exit.to_string();
    (
        format!("{} ({}) {}\n", r.below(1 << 22), comm(r), f.join(" ")),
        state,
        start,
        exit,
    )
}

/// Random damage: truncation, byte flips, inserted parentheses and spaces.
fn mutate(r: &mut Rng, s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    for _ in 0..r.below(6) {
        if b.is_empty() {
            break;
        }
        let i = r.below(b.len() as u64) as usize;
        match r.below(5) {
            0 => b.truncate(i),
            1 => b[i] = r.next() as u8,
            2 => b.insert(i, b')'),
            3 => b.insert(i, b' '),
            _ => {
                b.remove(i);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn procstat_parse_random_bounded() {
    let rounds: u64 = std::env::var("LIFEWATCH_PARSE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..rounds {
        let (text, state, start, exit) = line(&mut r);
        let got =
            parse(&text).unwrap_or_else(|| panic!("round {round}: valid line rejected: {text:?}"));
        assert_eq!(
            (got.state, got.start_time, got.exit_code),
            (state, start, Some(exit)),
            "round {round}: {text:?}"
        );
        // Damaged input: any answer but a panic is fine.
        let _ = parse(&mutate(&mut r, &text));
    }
}

fn rounds() -> u64 {
    std::env::var("LIFEWATCH_PARSE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// A hybrid host's mountinfo (v1 memory + pids, cgroup2 at /sys/fs/cgroup/unified).
const MOUNTINFO: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
28 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
29 25 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,pids
30 25 0:28 /job\\040x /sys/fs/cgroup/cpu,cpuacct rw shared:14 - cgroup cgroup rw,cpu,cpuacct
";

const PROC_CGROUP: &str = "\
12:pids:/user.slice/job
5:memory:/user.slice/job
3:cpu,cpuacct:/
1:name=systemd:/user.slice
0::/user.slice/job
";

/// Damaged and random inputs to the cgroup parsers (mountinfo, /proc/<pid>/cgroup,
/// memory.events-style counters, limit strings): any answer but a panic, and well-formed
/// counters and limits read back exactly.
#[test]
fn cgroup_parsers_random_bounded() {
    use lifewatch_core::cgroup::manage::limits::{bytes, pids, Input, Max};
    use lifewatch_core::cgroup::stats::parse_counters;
    use lifewatch_core::cgroup::Layout;

    let layout = Layout::from_mountinfo(MOUNTINFO.as_bytes()).expect("the sample parses");
    assert!(layout.v1.contains_key("memory") && layout.unified.is_some());
    assert!(layout.parse_cgroups(PROC_CGROUP.as_bytes()).is_ok());
    let mut r = Rng(0xD1B5_4A32_D192_ED03);
    let n = rounds();
    for round in 0..n {
        let mi = mutate(&mut r, MOUNTINFO);
        if let Ok(l) = Layout::from_mountinfo(mi.as_bytes()) {
            let _ = l.parse_cgroups(mutate(&mut r, PROC_CGROUP).as_bytes());
        }
        let _ = layout.parse_cgroups(mutate(&mut r, PROC_CGROUP).as_bytes());

        // memory.events: random keys and values, read back; then damaged.
        let mut want = std::collections::BTreeMap::new();
        let mut text = String::new();
        for i in 0..r.below(8) {
            let (k, v) = (format!("k{i}_{}", r.below(100)), r.next() >> r.below(64));
            text.push_str(&format!("{k} {v}\n"));
            want.insert(k, v);
        }
        assert_eq!(parse_counters(&text), want, "round {round}: {text:?}");
        let _ = parse_counters(&mutate(&mut r, &text));

        // Limits: a decimal byte count reads back; damaged strings never panic.
        let v = r.next() >> r.below(64) >> 2;
        let s = v.to_string();
        match bytes("memory", &Input::Text(s.clone())) {
            Ok(Max::Value(got)) => assert_eq!(got, v, "round {round}: {s:?}"),
            Ok(Max::Unlimited) => panic!("round {round}: {s:?} read as unlimited"),
            // Below the kernel's minimum, or above what it can represent: a typed error.
            Err(e) => assert_eq!(e.code, lifewatch_core::Code::InvalidArgument),
        }
        let units = [
            "", "k", "M", "G", "T", "Q", "\n1", " ", "max", "e400", ".5", "-",
        ];
        let junk = format!(
            "{}{}",
            mutate(&mut r, &s),
            units[r.below(units.len() as u64) as usize]
        );
        let _ = bytes("memory", &Input::Text(junk.clone()));
        let _ = pids(&Input::Text(junk));
        let f = f64::from_bits(r.next());
        let _ = bytes("memory", &Input::Number(f));
        let _ = pids(&Input::Number(f));
    }
    eprintln!("cgroup parsers: {n} rounds");
}
