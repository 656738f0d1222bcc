//! The kernel's panic triggers, read from `TRIGGERS` in
//! `kernel/src/panic/trigger.rs` as compiled into this crate, by a strict
//! parser: anything in the table but `("name", "description")` pairs and
//! `//` comments is an error, so a change of the table's shape fails loudly
//! instead of silently losing triggers.

#![forbid(unsafe_code)]

/// The kernel source the table is read from, compiled in (a change to it
/// rebuilds this crate, so the list always belongs to the kernel built with
/// it).
const KERNEL_SOURCE: &str = include_str!("../../kernel/src/panic/trigger.rs");

/// Where the table is.
const SOURCE_NAME: &str = "kernel/src/panic/trigger.rs";

/// The start of the table.
const HEAD: &str = "pub const TRIGGERS: &[(&str, &str)] = &[";

/// The trigger names of the kernel this crate was built with, in the
/// kernel's order.
pub fn kernel_triggers() -> Result<Vec<&'static str>, String> {
    parse(KERNEL_SOURCE).map_err(|e| format!("{SOURCE_NAME}: {e}"))
}

/// Parses the `TRIGGERS` table of `src` (see the module docs). Names must be
/// non-empty, lower case `a-z`, `0-9` and `-`, and unique.
pub fn parse(src: &str) -> Result<Vec<&str>, String> {
    let start = src.find(HEAD).ok_or_else(|| format!("no `{HEAD}` found"))?;
    let mut p = Parser {
        src,
        pos: start + HEAD.len(),
    };
    let mut names: Vec<&str> = Vec::new();
    loop {
        if p.eat("]") {
            break;
        }
        p.expect("(")?;
        let name_at = p.line();
        let name = p.string()?;
        p.expect(",")?;
        p.string()?;
        p.eat(",");
        p.expect(")")?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("line {name_at}: bad trigger name {name:?}"));
        }
        if names.contains(&name) {
            return Err(format!("line {name_at}: trigger {name:?} listed twice"));
        }
        names.push(name);
        if !p.eat(",") {
            p.expect("]")?;
            break;
        }
    }
    p.expect(";")?;
    if names.is_empty() {
        return Err("TRIGGERS is empty".into());
    }
    Ok(names)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn line(&self) -> usize {
        self.src[..self.pos].lines().count().max(1)
    }

    /// Skips white space and `//` comments.
    fn skip_blank(&mut self) {
        loop {
            let r = self.rest();
            let t = r.trim_start();
            self.pos += r.len() - t.len();
            if t.starts_with("//") {
                self.pos += t.find('\n').unwrap_or(t.len());
            } else {
                return;
            }
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_blank();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{token}`")))
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        let found: String = self.rest().chars().take(20).collect();
        format!(
            "line {}: expected {wanted} in TRIGGERS, found {found:?}",
            self.line()
        )
    }

    /// A plain `"..."` literal (escapes are skipped over, not decoded);
    /// returns its text between the quotes.
    fn string(&mut self) -> Result<&'a str, String> {
        if !self.eat("\"") {
            return Err(self.unexpected("a string literal"));
        }
        let body = self.rest();
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    self.pos += i + 1;
                    return Ok(&body[..i]);
                }
                _ => {}
            }
        }
        Err(format!("line {}: unterminated string literal", self.line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_comments_and_wrapped_entries() {
        let src = r#"
/// docs
pub const TRIGGERS: &[(&str, &str)] = &[
    ("plain", "panic!() in the calling thread"),
    // a comment between entries
    (
        "usb-lock",
        "another CPU holds the \"USB\" lock, (with parentheses)",
    ),
    ("ap-start", "a description \
        continued"),
];
"#;
        assert_eq!(parse(src).unwrap(), ["plain", "usb-lock", "ap-start"]);
    }

    #[test]
    fn a_changed_shape_is_an_error_not_a_shorter_list() {
        let bad = [
            ("pub const TRIGGERS: &[&str] = &[\"plain\"];", "no `"),
            (
                "pub const TRIGGERS: &[(&str, &str)] = &[(\"plain\", \"x\"), NAME];",
                "expected `(`",
            ),
            (
                "pub const TRIGGERS: &[(&str, &str)] = &[(\"plain\", \"x\", 3)];",
                "expected `)`",
            ),
            (
                "pub const TRIGGERS: &[(&str, &str)] = &[(\"Plain\", \"x\")];",
                "bad trigger name",
            ),
            (
                "pub const TRIGGERS: &[(&str, &str)] = &[(\"a\", \"x\"), (\"a\", \"y\")];",
                "listed twice",
            ),
            ("pub const TRIGGERS: &[(&str, &str)] = &[];", "empty"),
            (
                "pub const TRIGGERS: &[(&str, &str)] = &[(\"a\", \"x)];",
                "unterminated",
            ),
        ];
        for (src, why) in bad {
            let e = parse(src).unwrap_err();
            assert!(e.contains(why), "{src}: {e}");
        }
    }

    #[test]
    fn the_kernel_table_parses() {
        let t = kernel_triggers().unwrap();
        assert!(t.contains(&"plain") && t.len() >= 10, "{t:?}");
    }
}
