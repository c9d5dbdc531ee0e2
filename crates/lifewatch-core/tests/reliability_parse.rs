//! Issue 6, part 8 (stable half): a bounded random test of the /proc/<pid>/stat parser that
//! runs everywhere, without nightly. `npm run reliability -- --long` adds coverage-guided
//! fuzzing with cargo fuzz (crates/lifewatch-core/fuzz) where a nightly toolchain exists.

use lifewatch_core::procstat::parse;

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
