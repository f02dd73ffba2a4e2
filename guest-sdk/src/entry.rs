//! Entries: the functions [`entries!`](crate::entries) names, what they may
//! take and return, and the types each one declares, which every spawn and
//! join of it is checked against.
//!
//! Every task of a component is an instance of the same code, so the table
//! of entries that `entries!` builds is the same in all of them: a task
//! that spawns an entry checks the types it means against that table before
//! asking the host, and a join checks its result type the same way. The
//! types are Rust's own names of them (`std::any::type_name`), read without
//! module paths or references, with `str` read as `String` and a slice as a
//! `Vec`, so that types which encode alike and look alike compare equal.

use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result, decode, encode};

/// What an entry function may return: `()` or `Result<T, E>` with a
/// serializable `T` and a displayable `E`.
pub trait EntryOutput {
    /// The value a joiner receives: `()`, or the `T` of `Result<T, E>`.
    type Value;
    #[doc(hidden)]
    fn into_output(self) -> std::result::Result<Vec<u8>, String>;
    #[doc(hidden)]
    fn into_json(self) -> std::result::Result<String, String>;
}

impl EntryOutput for () {
    type Value = ();
    fn into_output(self) -> std::result::Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn into_json(self) -> std::result::Result<String, String> {
        Ok("null".to_string())
    }
}

impl<T: Serialize, E: fmt::Display> EntryOutput for std::result::Result<T, E> {
    type Value = T;
    fn into_output(self) -> std::result::Result<Vec<u8>, String> {
        match self {
            Ok(value) => encode(&value).map_err(|e| e.to_string()),
            Err(error) => Err(format!("{error:#}")),
        }
    }
    fn into_json(self) -> std::result::Result<String, String> {
        match self {
            Ok(value) => serde_json::to_string(&value)
                .map_err(|e| format!("its result cannot be written as JSON: {e}")),
            Err(error) => Err(format!("{error:#}")),
        }
    }
}

/// What an entry function may take: nothing, or one deserializable argument.
pub trait EntryFn<Marker> {
    /// What the entry takes: its argument's type, or `()`.
    type Arg;
    /// What its joiner receives (see [`EntryOutput`]).
    type Value;
    #[doc(hidden)]
    fn invoke(self, payload: &[u8]) -> std::result::Result<Vec<u8>, String>;
    #[doc(hidden)]
    fn invoke_json(self, name: &str, arg: &str) -> std::result::Result<String, String>;
}

#[doc(hidden)]
pub struct NoArg;
#[doc(hidden)]
pub struct OneArg<A>(PhantomData<A>);

impl<F: FnOnce() -> O, O: EntryOutput> EntryFn<NoArg> for F {
    type Arg = ();
    type Value = O::Value;
    fn invoke(self, _payload: &[u8]) -> std::result::Result<Vec<u8>, String> {
        self().into_output()
    }
    fn invoke_json(self, name: &str, arg: &str) -> std::result::Result<String, String> {
        if arg.trim() != "null" {
            return Err(format!(
                "entry `{name}` takes no argument, but was given {arg}"
            ));
        }
        self().into_json()
    }
}

impl<F: FnOnce(A) -> O, A: DeserializeOwned, O: EntryOutput> EntryFn<OneArg<A>> for F {
    type Arg = A;
    type Value = O::Value;
    fn invoke(self, payload: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let arg = decode(payload).map_err(|e| format!("bad argument: {e}"))?;
        self(arg).into_output()
    }
    fn invoke_json(self, name: &str, arg: &str) -> std::result::Result<String, String> {
        let taken = label(std::any::type_name::<A>());
        let arg = serde_json::from_str(arg).map_err(|e| match arg.trim() {
            "null" => format!("entry `{name}` takes {taken}: give it one (`--arg JSON`)"),
            _ => format!("entry `{name}` takes {taken}, and {arg} is not one: {e}"),
        })?;
        self(arg).into_json()
    }
}

/// An entry as [`entries!`](crate::entries) lists it: its name and its
/// types, read when a spawn or join is checked.
#[doc(hidden)]
pub struct Signature {
    name: &'static str,
    arg: fn() -> &'static str,
    result: fn() -> &'static str,
}

impl Signature {
    /// The signature of `entry`, listed as `name`.
    pub const fn of<M, F: EntryFn<M>>(name: &'static str, entry: F) -> Signature {
        // A function item has no drop of its own.
        std::mem::forget(entry);
        Signature {
            name,
            arg: std::any::type_name::<F::Arg>,
            result: std::any::type_name::<F::Value>,
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its argument's type, as it is compared and shown.
    pub fn arg(&self) -> String {
        label((self.arg)())
    }

    /// Its result's type, as it is compared and shown.
    pub fn result(&self) -> String {
        label((self.result)())
    }
}

/// The component's entries, set by the first export the host calls.
static ENTRIES: OnceLock<&'static [Signature]> = OnceLock::new();

/// Keeps the table that `entries!` built, for the checks.
pub(crate) fn register(table: &'static [Signature]) {
    let _ = ENTRIES.set(table);
}

/// Checks that `entry` is an entry that takes an `A` and returns an `R`:
/// otherwise [`Error::Invalid`] naming the entry and both types. Outside a
/// task (no table yet), nothing is checked.
pub(crate) fn check_spawn<A: ?Sized, R>(entry: &str) -> Result<()> {
    let Some(table) = ENTRIES.get() else {
        return Ok(());
    };
    let Some(found) = table.iter().find(|s| s.name == entry) else {
        // A long list is cut short: the message stays one readable line.
        let mut names: Vec<&str> = table.iter().map(|s| s.name).take(8).collect();
        if table.len() > names.len() {
            names.push("…");
        }
        return Err(Error::Invalid(format!(
            "no entry named `{entry}`: the entries are {} (a function becomes one when \
             it is listed in `mtask::entries!`)",
            names.join(", ")
        )));
    };
    same(entry, "takes", (found.arg)(), std::any::type_name::<A>())?;
    same(
        entry,
        "returns",
        (found.result)(),
        std::any::type_name::<R>(),
    )
}

/// Checks that `entry`, if the table knows it, returns an `R`.
pub(crate) fn check_result<R>(entry: &str) -> Result<()> {
    match ENTRIES
        .get()
        .and_then(|t| t.iter().find(|s| s.name == entry))
    {
        Some(found) => same(
            entry,
            "returns",
            (found.result)(),
            std::any::type_name::<R>(),
        ),
        None => Ok(()),
    }
}

/// `Ok` if `declared` and `meant` are the same type as [`label`] reads them.
fn same(entry: &str, verb: &str, declared: &str, meant: &str) -> Result<()> {
    let (declared_label, meant_label) = (label(declared), label(meant));
    if declared == meant || declared_label == meant_label {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "entry `{entry}` {verb} {declared_label}, not {meant_label}"
    )))
}

/// A type's name as entries' types are compared and shown: without module
/// paths and references, `str` as `String`, a slice `[T]` as `Vec<T>`.
pub(crate) fn label(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    // Where the identifier being read starts in `out`.
    let mut ident_start = None;
    // The brackets open around the current point: `(` `<` `[`, and for a
    // `[`, where it is in `out` and whether it is an array (`[T; N]`).
    let mut open: Vec<(char, usize, bool)> = Vec::new();
    let mut chars = type_name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            ident_start.get_or_insert(out.len());
            out.push(c);
            continue;
        }
        if let Some(start) = ident_start.take() {
            if c == ':' && chars.peek() == Some(&':') {
                // A path segment: only the last one is kept.
                chars.next();
                out.truncate(start);
                continue;
            }
            if &out[start..] == "str" {
                out.replace_range(start.., "String");
            }
        }
        match c {
            '&' => {
                // `&T` and `&mut T` read as `T`.
                let rest: String = chars.clone().take(4).collect();
                if rest == "mut " {
                    chars.nth(3);
                }
            }
            '(' | '<' => {
                open.push((c, out.len(), false));
                out.push(c);
            }
            '[' => {
                open.push(('[', out.len(), false));
                out.push(c);
            }
            ';' => {
                if let Some(top) = open.last_mut().filter(|top| top.0 == '[') {
                    top.2 = true;
                }
                out.push(c);
            }
            ']' => match open.pop() {
                Some(('[', at, false)) => {
                    out.replace_range(at..=at, "Vec<");
                    out.push('>');
                }
                _ => out.push(c),
            },
            ')' | '>' => {
                open.pop();
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    if let Some(start) = ident_start
        && &out[start..] == "str"
    {
        out.replace_range(start.., "String");
    }
    out
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::export;
    use crate::bindings::mtask::task::types::EntryType;

    pub use super::Signature;

    /// Routes panics to the host so the joiner sees the message, and keeps
    /// the entry table for the checks: what every export does first.
    pub fn start(table: &'static [Signature]) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                crate::bindings::mtask::task::tasks::report_panic(&info.to_string());
            }))
        });
        super::register(table);
    }

    /// The `entry-types` export.
    pub fn entry_types(table: &'static [Signature]) -> Vec<EntryType> {
        table
            .iter()
            .map(|s| EntryType {
                name: s.name().to_string(),
                arg: s.arg(),
                result: s.result(),
            })
            .collect()
    }

    pub fn invoke<M, F: crate::EntryFn<M>>(f: F, payload: &[u8]) -> Result<Vec<u8>, String> {
        f.invoke(payload)
    }

    pub fn invoke_json<M, F: crate::EntryFn<M>>(
        f: F,
        name: &str,
        arg: &str,
    ) -> Result<String, String> {
        f.invoke_json(name, arg)
    }
}

/// Names the functions of this crate that the host may run as tasks, and
/// exports them from the component. `mtask-host run` starts `main` unless
/// told otherwise. Use it once, at the crate's root: [`spawn_fn!`] and
/// [`call_fn!`] find the entries there.
///
/// Each function takes nothing or one argument (`serde::Deserialize`), and
/// returns `()` or `Result<T, E>` (`T: serde::Serialize`, `E: Display`). An
/// `Err` ends the task as failed with the error's message. The types are
/// the entry's: a spawn or join of it with other types is refused with
/// [`Error::Invalid`](crate::Error::Invalid), naming both.
///
/// ```no_run
/// fn main() {
///     println!("hello");
/// }
/// fn double(n: i64) -> Result<i64, String> {
///     n.checked_mul(2).ok_or_else(|| "overflow".to_string())
/// }
/// mtask::entries!(main, double);
/// ```
///
/// [`spawn_fn!`]: crate::spawn_fn!
/// [`call_fn!`]: crate::call_fn!
#[macro_export]
macro_rules! entries {
    ($($entry:ident),+ $(,)?) => {
        #[doc(hidden)]
        struct MtaskEntries;

        #[doc(hidden)]
        static MTASK_ENTRY_TABLE: &[$crate::__private::Signature] = &[
            $($crate::__private::Signature::of(::core::stringify!($entry), $entry)),+
        ];

        /// The entries, for `spawn_fn!` and `call_fn!` to find at compile time.
        #[doc(hidden)]
        #[allow(unused_imports)]
        mod __mtask_entries {
            pub(crate) use super::{$($entry),+};
        }

        impl $crate::bindings::Guest for MtaskEntries {
            fn entries() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$(::std::string::String::from(::core::stringify!($entry))),+]
            }

            fn entry_types() -> ::std::vec::Vec<$crate::bindings::mtask::task::types::EntryType> {
                $crate::__private::start(MTASK_ENTRY_TABLE);
                $crate::__private::entry_types(MTASK_ENTRY_TABLE)
            }

            fn run(
                entry: ::std::string::String,
                payload: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::__private::start(MTASK_ENTRY_TABLE);
                match entry.as_str() {
                    $(::core::stringify!($entry) => $crate::__private::invoke($entry, &payload),)+
                    other => ::core::result::Result::Err(::std::format!("no entry named `{other}`")),
                }
            }

            fn run_json(
                entry: ::std::string::String,
                arg: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                $crate::__private::start(MTASK_ENTRY_TABLE);
                match entry.as_str() {
                    $(::core::stringify!($entry) => {
                        $crate::__private::invoke_json($entry, &entry, &arg)
                    })+
                    other => ::core::result::Result::Err(::std::format!("no entry named `{other}`")),
                }
            }
        }

        $crate::__private::export!(MtaskEntries with_types_in $crate::bindings);
    };
}

/// [`spawn_fn`](crate::spawn_fn) (with handles: [`spawn_fn_with`](crate::spawn_fn_with))
/// that refuses at compile time a function not listed in
/// [`entries!`](crate::entries): `mtask::spawn_fn!(square, &7)`,
/// `mtask::spawn_fn!(square, &7, handles)`.
#[macro_export]
// `crate` is meant: the entries are the calling crate's.
#[allow(clippy::crate_in_macro_def)]
macro_rules! spawn_fn {
    ($entry:ident, $arg:expr $(,)?) => {
        $crate::spawn_fn(crate::__mtask_entries::$entry, $arg)
    };
    ($entry:ident, $arg:expr, $handles:expr $(,)?) => {
        $crate::spawn_fn_with(crate::__mtask_entries::$entry, $arg, $handles)
    };
}

/// [`call_fn`](crate::call_fn) that refuses at compile time a function not
/// listed in [`entries!`](crate::entries): `mtask::call_fn!(square, &7)`.
#[macro_export]
#[allow(clippy::crate_in_macro_def)]
macro_rules! call_fn {
    ($entry:ident, $arg:expr $(,)?) => {
        $crate::call_fn(crate::__mtask_entries::$entry, $arg)
    };
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn labels_read_types_as_they_encode() {
        let cases = [
            ("u64", "u64"),
            ("&str", "String"),
            ("alloc::string::String", "String"),
            ("&mut alloc::string::String", "String"),
            ("[u8]", "Vec<u8>"),
            ("alloc::vec::Vec<u8>", "Vec<u8>"),
            ("[u8; 4]", "[u8; 4]"),
            ("[[u8; 2]]", "Vec<[u8; 2]>"),
            ("(u64, &str)", "(u64, String)"),
            (
                "core::option::Option<&[my_app::Point]>",
                "Option<Vec<Point>>",
            ),
            (
                "std::collections::hash::map::HashMap<alloc::string::String, i32>",
                "HashMap<String, i32>",
            ),
            ("()", "()"),
            ("strange::strings", "strings"),
        ];
        for (name, want) in cases {
            assert_eq!(label(name), want, "{name}");
        }
    }
}
