//! An entry of a component, with the types of its argument and result as
//! its SDK writes them (WIT 0.1.2's `entry-types`), and how a list of them
//! is kept in the cache beside the component's code.

/// An entry of a program: a kind of task it can run, with the types of its
/// argument and result as the component's SDK writes them (empty when the
/// component does not say: a `wasi:cli` command, or an SDK older than WIT
/// 0.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name, which `spawn` and `--entry` take.
    pub name: String,
    /// Its argument's type.
    pub arg: String,
    /// Its result's type.
    pub result: String,
}

impl Entry {
    /// An entry whose types are not known.
    pub fn untyped(name: String) -> Entry {
        Entry {
            name,
            arg: String::new(),
            result: String::new(),
        }
    }
}

impl std::fmt::Display for Entry {
    /// `name`, or `name(ARG) -> RESULT` when the types are known (`()`
    /// is nothing: `main()`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if self.arg.is_empty() && self.result.is_empty() {
            return Ok(());
        }
        match self.arg.as_str() {
            "()" => f.write_str("()")?,
            "" => f.write_str("(?)")?,
            arg => write!(f, "({arg})")?,
        }
        match self.result.as_str() {
            "()" => Ok(()),
            "" => f.write_str(" -> ?"),
            result => write!(f, " -> {result}"),
        }
    }
}

/// The entries as the cache keeps them: a line each, the name and the two
/// types separated by tabs. `None` if a name or type holds a tab or a line
/// break (the list is then asked for again on the next load).
pub(crate) fn to_lines(entries: &[Entry]) -> Option<String> {
    let bad = |t: &str| t.contains(['\t', '\n', '\r']);
    if entries
        .iter()
        .any(|e| bad(&e.name) || bad(&e.arg) || bad(&e.result))
    {
        return None;
    }
    let lines: Vec<String> = entries
        .iter()
        .map(|e| format!("{}\t{}\t{}", e.name, e.arg, e.result))
        .collect();
    Some(lines.join("\n"))
}

/// The entries that [`to_lines`] wrote; `None` for anything else, such as a
/// list of names alone written by an older host.
pub(crate) fn from_lines(text: &str) -> Option<Vec<Entry>> {
    text.split('\n')
        .map(|line| {
            let mut parts = line.split('\t');
            let entry = Entry {
                name: parts.next()?.to_string(),
                arg: parts.next()?.to_string(),
                result: parts.next()?.to_string(),
            };
            parts.next().is_none().then_some(entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_old_lists_are_refused() {
        let entries = vec![
            Entry::untyped("main".into()),
            Entry {
                name: "square".into(),
                arg: "u64".into(),
                result: "Vec<(u8, String)>".into(),
            },
        ];
        let text = to_lines(&entries).unwrap();
        assert_eq!(from_lines(&text).unwrap(), entries);
        assert_eq!(from_lines("main\nsquare"), None);
        let tabbed = Entry {
            arg: "a\tb".into(),
            ..Entry::untyped("x".into())
        };
        assert_eq!(to_lines(&[tabbed]), None);
    }
}
