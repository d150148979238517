//! Build-time step for the command table: turns a redis-server's `COMMAND` reply (raw RESP2)
//! into the Rust source of `src/command/table.rs`, which the rest of `portcullis::command` reads.
//! Not part of the proxy: `examples/gen_command_table.rs` and the `vs_redis` tests include it.
//!
//! `examples/gen_command_table.rs` runs it against a live server and `tests/command_table.rs`
//! checks that the committed table is exactly what such a server says. Anything the types in
//! `types.rs` cannot represent (an unknown flag, category or key-spec form) is a [`GenError`],
//! so a newer Redis cannot silently lose information. The output is already rustfmt-formatted.

use std::collections::HashMap;
use std::io::{Read, Write};

use portcullis::command::{flags, key_flags, FindKeys, CATEGORIES};

mod emit;
mod resp;

pub use resp::{encode_command, parse_reply, Value};

/// Why the table could not be generated (or the server not queried).
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The bytes are not a well-formed RESP2 reply, or they end too early.
    #[error("malformed RESP reply: {0}")]
    Resp(String),
    /// Well-formed RESP, but not shaped like `COMMAND`'s reply.
    #[error("unexpected COMMAND reply: {0}")]
    Shape(String),
    /// A flag, key-spec flag, category or key-spec type that `types.rs` has no place for.
    #[error("unknown {kind} {name:?} in command {command:?}: extend src/command/types.rs")]
    Unknown {
        /// What kind of name it is (`flag`, `category`, ...).
        kind: &'static str,
        /// The name as the server sent it.
        name: String,
        /// The command it appeared in.
        command: String,
    },
    /// Two entries have the same full name, or there are too many for `u16` ids.
    #[error("cannot assign ids: {0}")]
    Ids(String),
    /// The server answered with an error reply.
    #[error("server error: {0}")]
    Server(String),
    /// Talking to the server failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a key spec starts looking; like `portcullis::command::BeginSearch` but owning its keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Begin {
    Index(i32),
    Keyword(String, i32),
    Unknown,
}

/// One key spec as read from the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    flags: u16,
    begin: Begin,
    find: FindKeys,
}

/// One command or subcommand as read from the reply, before ids exist.
#[derive(Debug)]
struct Raw {
    name: String,
    arity: i32,
    flags: u64,
    categories: u32,
    module: bool,
    key_specs: Vec<Spec>,
    subcommands: Vec<Raw>,
}

/// One table entry with ids resolved, ready to print.
#[derive(Debug)]
struct Entry {
    name: String,
    arity: i32,
    flags: u64,
    categories: u32,
    key_specs: Vec<Spec>,
    parent: Option<u16>,
    subcommands: Vec<u16>,
}

/// Generates the full source of `table.rs` from the raw RESP2 bytes of `COMMAND`'s reply;
/// `redis_version` (from `INFO server`) goes into the header comment and `REDIS_VERSION`.
pub fn generate(command_reply: &[u8], redis_version: &str) -> Result<String, GenError> {
    let value = match parse_reply(command_reply)? {
        Some((value, used)) if used == command_reply.len() => value,
        Some(_) => return Err(GenError::Resp("trailing bytes after the reply".into())),
        None => return Err(GenError::Resp("reply is incomplete".into())),
    };
    if let Value::Error(e) = &value {
        return Err(GenError::Server(e.clone()));
    }
    let items = value
        .as_array()
        .ok_or_else(|| shape("the reply is not an array"))?;
    let mut raws = Vec::with_capacity(items.len());
    for item in items {
        let raw = parse_command(item, 0)?;
        if !raw.module {
            raws.push(raw);
        }
    }
    let entries = assign_ids(raws)?;
    Ok(emit::table_source(&entries, redis_version))
}

/// The `redis_version` field of an `INFO` reply's text.
pub fn redis_version(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
}

/// Sends one command over a blocking stream and reads its whole reply: the parsed value and
/// the raw bytes (for [`generate`]).
pub fn query<S: Read + Write>(
    stream: &mut S,
    args: &[&[u8]],
) -> Result<(Value, Vec<u8>), GenError> {
    stream.write_all(&encode_command(args))?;
    stream.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if let Some((value, used)) = parse_reply(&buf)? {
            buf.truncate(used);
            return Ok((value, buf));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(GenError::Resp("connection closed mid-reply".into()));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

fn shape(what: impl Into<String>) -> GenError {
    GenError::Shape(what.into())
}

fn unknown(kind: &'static str, name: &str, command: &str) -> GenError {
    GenError::Unknown {
        kind,
        name: name.to_owned(),
        command: command.to_owned(),
    }
}

/// Element `i` of a command's 10-element array.
fn field<'a>(items: &'a [Value], i: usize, name: &str) -> Result<&'a Value, GenError> {
    items
        .get(i)
        .ok_or_else(|| shape(format!("command {name:?} has no element {i}")))
}

fn text_of<'a>(value: &'a Value, what: &str) -> Result<&'a str, GenError> {
    value
        .as_text()
        .ok_or_else(|| shape(format!("{what} is not a string")))
}

fn int_of(value: &Value, what: &str) -> Result<i32, GenError> {
    value
        .as_int()
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| shape(format!("{what} is not a 32-bit integer")))
}

fn array_of<'a>(value: &'a Value, what: &str) -> Result<&'a [Value], GenError> {
    value
        .as_array()
        .ok_or_else(|| shape(format!("{what} is not an array")))
}

/// Bit mask of the names in `set`, each looked up in `names` (exact spelling).
fn mask_of(set: &Value, names: &[&str], kind: &'static str, cmd: &str) -> Result<u64, GenError> {
    let mut bits = 0u64;
    for item in array_of(set, kind)? {
        let name = text_of(item, kind)?;
        let bit = names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| unknown(kind, name, cmd))?;
        bits |= 1 << bit;
    }
    Ok(bits)
}

/// Parses one entry of `COMMAND` (a subcommand when `depth > 0`).
fn parse_command(value: &Value, depth: usize) -> Result<Raw, GenError> {
    let items = array_of(value, "a command entry")?;
    let name = text_of(field(items, 0, "?")?, "a command name")?.to_ascii_lowercase();
    if items.len() != 10 {
        return Err(shape(format!(
            "command {name:?} has {} elements, not 10",
            items.len()
        )));
    }
    let arity = int_of(field(items, 1, &name)?, "arity")?;
    let flag_names = array_of(field(items, 2, &name)?, "flags")?;
    let module = flag_names.iter().any(|f| f.as_text() == Some("module"));
    let flags = mask_of(field(items, 2, &name)?, &flags::NAMES, "flag", &name)?;
    let mut categories = 0u32;
    for item in array_of(field(items, 6, &name)?, "categories")? {
        let cat = text_of(item, "a category")?;
        let index = cat
            .strip_prefix('@')
            .and_then(|c| CATEGORIES.iter().position(|n| *n == c))
            .filter(|&i| i < 32)
            .ok_or_else(|| unknown("category", cat, &name))?;
        categories |= 1 << index;
    }
    let key_specs = array_of(field(items, 8, &name)?, "key specs")?
        .iter()
        .map(|spec| parse_key_spec(spec, &name))
        .collect::<Result<Vec<_>, _>>()?;
    let subs = array_of(field(items, 9, &name)?, "subcommands")?;
    if depth > 0 && !subs.is_empty() {
        return Err(shape(format!(
            "{name:?}: subcommands nested more than one level"
        )));
    }
    let subcommands = subs
        .iter()
        .map(|sub| parse_command(sub, depth + 1))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Raw {
        name,
        arity,
        flags,
        categories,
        module,
        key_specs,
        subcommands,
    })
}

/// The value under `key` in a RESP2 map (a flat key/value array); errors on unknown keys.
fn map_get<'a>(
    map: &'a [Value],
    key: &str,
    known: &[&str],
    cmd: &str,
) -> Result<Option<&'a Value>, GenError> {
    if !map.len().is_multiple_of(2) {
        return Err(shape(format!("{cmd:?}: a key-spec map has an odd length")));
    }
    let mut found = None;
    for pair in map.chunks_exact(2) {
        let k = text_of(&pair[0], "a map key")?;
        if !known.contains(&k) {
            return Err(unknown("key-spec field", k, cmd));
        }
        if k == key {
            found = Some(&pair[1]);
        }
    }
    Ok(found)
}

/// An integer under `key` in a map that must have it.
fn map_int(map: &[Value], key: &str, known: &[&str], cmd: &str) -> Result<i32, GenError> {
    let value = map_get(map, key, known, cmd)?
        .ok_or_else(|| shape(format!("{cmd:?}: key spec without {key:?}")))?;
    int_of(value, key)
}

/// The `type` and `spec` map of a `begin_search` or `find_keys` value.
fn typed<'a>(value: &'a Value, cmd: &str) -> Result<(&'a str, &'a [Value]), GenError> {
    let map = array_of(value, "a key-spec part")?;
    let known = ["type", "spec"];
    let kind = map_get(map, "type", &known, cmd)?
        .ok_or_else(|| shape(format!("{cmd:?}: key-spec part without type")))?;
    let spec = map_get(map, "spec", &known, cmd)?
        .ok_or_else(|| shape(format!("{cmd:?}: key-spec part without spec")))?;
    Ok((
        text_of(kind, "a key-spec type")?,
        array_of(spec, "a key-spec spec")?,
    ))
}

fn parse_key_spec(value: &Value, cmd: &str) -> Result<Spec, GenError> {
    let map = array_of(value, "a key spec")?;
    let known = ["notes", "flags", "begin_search", "find_keys"];
    let get = |key: &str| {
        map_get(map, key, &known, cmd)?
            .ok_or_else(|| shape(format!("{cmd:?}: key spec without {key}")))
    };
    let flags = mask_of(get("flags")?, &key_flags::NAMES, "key-spec flag", cmd)?;
    let flags = u16::try_from(flags).map_err(|_| shape("key-spec flags exceed 16 bits"))?;
    let begin = match typed(get("begin_search")?, cmd)? {
        ("index", spec) => Begin::Index(map_int(spec, "index", &["index"], cmd)?),
        ("keyword", spec) => {
            let known = ["keyword", "startfrom"];
            let keyword = map_get(spec, "keyword", &known, cmd)?
                .ok_or_else(|| shape(format!("{cmd:?}: keyword spec without keyword")))?;
            let keyword = text_of(keyword, "a keyword")?.to_ascii_lowercase();
            Begin::Keyword(keyword, map_int(spec, "startfrom", &known, cmd)?)
        }
        ("unknown", _) => Begin::Unknown,
        (other, _) => return Err(unknown("begin_search type", other, cmd)),
    };
    let find = match typed(get("find_keys")?, cmd)? {
        ("range", spec) => {
            let known = ["lastkey", "keystep", "limit"];
            FindKeys::Range {
                lastkey: map_int(spec, "lastkey", &known, cmd)?,
                keystep: map_int(spec, "keystep", &known, cmd)?,
                limit: map_int(spec, "limit", &known, cmd)?,
            }
        }
        ("keynum", spec) => {
            let known = ["keynumidx", "firstkey", "keystep"];
            FindKeys::Keynum {
                keynumidx: map_int(spec, "keynumidx", &known, cmd)?,
                firstkey: map_int(spec, "firstkey", &known, cmd)?,
                keystep: map_int(spec, "keystep", &known, cmd)?,
            }
        }
        ("unknown", _) => FindKeys::Unknown,
        (other, _) => return Err(unknown("find_keys type", other, cmd)),
    };
    Ok(Spec { flags, begin, find })
}

/// Flattens commands and subcommands, sorts them by full name and assigns dense ids.
fn assign_ids(raws: Vec<Raw>) -> Result<Vec<Entry>, GenError> {
    let mut flat: Vec<(Raw, Option<String>)> = Vec::new();
    for mut raw in raws {
        let subs = std::mem::take(&mut raw.subcommands);
        for sub in subs {
            let own = sub.name.strip_prefix(raw.name.as_str());
            if !own.is_some_and(|rest| rest.len() > 1 && rest.starts_with('|')) {
                return Err(shape(format!(
                    "{:?} is not named {:?}|...",
                    sub.name, raw.name
                )));
            }
            if !sub.module {
                flat.push((sub, Some(raw.name.clone())));
            }
        }
        flat.push((raw, None));
    }
    flat.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    if flat.len() > usize::from(u16::MAX) {
        return Err(GenError::Ids(format!(
            "{} entries do not fit u16 ids",
            flat.len()
        )));
    }
    let mut ids: HashMap<String, u16> = HashMap::new();
    for (id, (raw, _)) in (0u16..).zip(&flat) {
        if ids.insert(raw.name.clone(), id).is_some() {
            return Err(GenError::Ids(format!("duplicate name {:?}", raw.name)));
        }
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(flat.len());
    for (raw, parent) in &flat {
        let parent = match parent {
            Some(p) => Some(
                *ids.get(p)
                    .ok_or_else(|| shape(format!("no parent {p:?}")))?,
            ),
            None => None,
        };
        entries.push(Entry {
            name: raw.name.clone(),
            arity: raw.arity,
            flags: raw.flags,
            categories: raw.categories,
            key_specs: raw.key_specs.clone(),
            parent,
            subcommands: Vec::new(),
        });
    }
    for id in 0..entries.len() {
        if let Some(parent) = entries[id].parent {
            let id = u16::try_from(id).map_err(|_| GenError::Ids("id overflow".into()))?;
            entries[usize::from(parent)].subcommands.push(id);
        }
    }
    Ok(entries)
}
