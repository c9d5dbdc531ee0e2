//! Core errors cross into JavaScript as a JSON reason the TS layer turns into `LifewatchError`.

use lifewatch_core::Error;

pub fn to_napi(e: Error) -> napi::Error {
    let mut fields = vec![
        format!("\"code\":{}", json_str(e.code.as_str())),
        format!("\"message\":{}", json_str(&e.message)),
    ];
    if let Some(s) = e.syscall {
        fields.push(format!("\"syscall\":{}", json_str(s)));
    }
    if let Some(n) = e.errno {
        fields.push(format!("\"errno\":{n}"));
    }
    if let Some(p) = &e.path {
        fields.push(format!("\"path\":{}", json_str(&p.to_string_lossy())));
    }
    napi::Error::from_reason(format!("{{{}}}", fields.join(",")))
}

pub trait IntoNapi<T> {
    fn napi(self) -> napi::Result<T>;
}

impl<T> IntoNapi<T> for lifewatch_core::Result<T> {
    fn napi(self) -> napi::Result<T> {
        self.map_err(to_napi)
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
