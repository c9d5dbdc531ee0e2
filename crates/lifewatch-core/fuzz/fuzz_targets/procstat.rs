//! `/proc/<pid>/stat` parser: never panics, and whatever it accepts is consistent with the
//! text (the state is the first field after the last `)`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(st) = lifewatch_core::process::procstat::parse(&text) {
        let rest = &text[text.rfind(')').expect("accepted text has a ')'") + 1..];
        let first = rest.split_ascii_whitespace().next().expect("a state field");
        assert_eq!(first.chars().next(), Some(st.state));
    }
});
