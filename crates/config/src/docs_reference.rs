//! docs/configuration.md checked against the code, so that the reference cannot drift:
//!
//! - every key the code accepts (traced from the raw structs by `accepted_keys`) has a row, and
//!   every row names a key the code accepts, with a type that matches what the key takes;
//! - every default written as a single value in backticks is the code's default: the file with
//!   the key set to it reads exactly as the file without the key;
//! - every TOML block is accepted by the real parser (`Config::parse`), and together the blocks
//!   set every key, so each key is shown with a value that works.
//!
//! A row is a Markdown table line whose first cell is the dotted key in backticks:
//! `` | `limits.max_recipients` | integer | `100` | meaning | ``.

use std::collections::BTreeSet;
use std::path::Path;

use crate::accepted_keys::{accepted_keys, Key, Shape};
use crate::Config;

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
const CONFIG_PATH: &str = "/etc/portcullis/portcullis.toml";
/// What a TOML block of the reference leaves out is taken from here (the required keys).
const BASE: &str = "hostname = \"mail.example.org\"\n[tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n";

struct Row {
    line: usize,
    key: String,
    kind: String,
    default: String,
}

struct Block {
    line: usize,
    text: String,
}

fn reference() -> String {
    std::fs::read_to_string(REFERENCE).unwrap_or_else(|e| panic!("cannot read {REFERENCE}: {e}"))
}

/// The table rows that document a key, and the TOML blocks.
fn read_reference(text: &str) -> (Vec<Row>, Vec<Block>) {
    let mut rows = Vec::new();
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if let Some(block) = open.as_mut() {
            if line.trim_start().starts_with("```") {
                blocks.extend(open.take());
            } else {
                block.text.push_str(line);
                block.text.push('\n');
            }
            continue;
        }
        if line.trim_start().starts_with("```toml") {
            open = Some(Block { line: line_no, text: String::new() });
            continue;
        }
        if !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(
            cells.len(),
            4,
            "docs/configuration.md line {line_no}: a key row has four cells (key, type, default, meaning); \
             write \"or\" instead of a | inside a cell: {line}"
        );
        let key = single_code_span(cells[0])
            .unwrap_or_else(|| panic!("docs/configuration.md line {line_no}: the key cell must be `dotted.key`"));
        rows.push(Row {
            line: line_no,
            key: key.to_string(),
            kind: cells[1].to_string(),
            default: cells[2].to_string(),
        });
    }
    assert!(open.is_none(), "docs/configuration.md: a ```toml block is not closed");
    (rows, blocks)
}

/// `` `x` `` -> x; anything else (prose, several spans) -> None.
fn single_code_span(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}

/// The shape a documented type must have in the raw structs.
fn documented_shape(kind: &str) -> Option<Shape> {
    match kind {
        "string" | "path" | "duration" | "choice" | "URL" | "host name" => Some(Shape::String),
        "integer" => Some(Shape::Integer),
        "number" => Some(Shape::Float),
        "boolean" => Some(Shape::Boolean),
        "size" => Some(Shape::IntegerOrString),
        "list of addresses" | "list of networks" | "list of accounts" | "list of servers" | "list of zones"
        | "list of listeners" => Some(Shape::List(Box::new(Shape::String))),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(Path::new(CONFIG_PATH), text).map_err(|e| e.to_string())
}

/// `over` laid on `base`, table by table.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A TOML block as a whole file: the base, with the block laid over it.
fn complete(block: &str) -> Result<(String, toml::Table), String> {
    let table: toml::Table = toml::from_str(block).map_err(|e| format!("not TOML: {e}"))?;
    let mut whole: toml::Table = toml::from_str(BASE).map_err(|e| e.to_string())?;
    merge(&mut whole, table.clone());
    Ok((whole.to_string(), table))
}

/// The dotted paths of the leaf values a table sets.
fn leaf_paths(table: &toml::Table, prefix: &str, into: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => leaf_paths(inner, &path, into),
            _ => {
                into.insert(path);
            }
        }
    }
}

/// The base with one key set to a TOML value.
fn with_key(path: &str, value: &str) -> Result<String, String> {
    let (tables, key) = match path.rsplit_once('.') {
        Some((tables, key)) => (Some(tables), key),
        None => (None, path),
    };
    let fragment = match tables {
        Some(tables) => format!("[{tables}]\n{key} = {value}\n"),
        None => format!("{key} = {value}\n"),
    };
    complete(&fragment).map(|(whole, _)| whole)
}

/// Each check collects every problem it finds, so that one run names them all.
fn report(problems: Vec<String>) {
    assert!(problems.is_empty(), "docs/configuration.md and the code disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn every_key_the_code_accepts_is_documented_and_every_documented_key_exists() {
    let (rows, _) = read_reference(&reference());
    let accepted = accepted_keys();
    let mut problems = Vec::new();
    for key in &accepted {
        if !rows.iter().any(|r| r.key == key.path) {
            problems.push(format!(
                "`{}` is accepted by the code but not documented: add a row `| `{}` | type | default | meaning |` \
                 to its section",
                key.path, key.path
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for row in &rows {
        if !seen.insert(row.key.as_str()) {
            problems.push(format!("line {}: `{}` is documented twice", row.line, row.key));
        }
        match accepted.iter().find(|k| k.path == row.key) {
            None => {
                problems.push(format!("line {}: `{}` is documented but the code does not accept it", row.line, row.key))
            }
            Some(Key { shape, .. }) => match documented_shape(&row.kind) {
                None => problems.push(format!(
                    "line {}: `{}` has the type \"{}\", which is none of string, path, duration, choice, URL, \
                     host name, integer, number, boolean, size, list of addresses/networks/accounts",
                    row.line, row.key, row.kind
                )),
                Some(documented) if documented != *shape => problems.push(format!(
                    "line {}: `{}` is documented as \"{}\" but the code reads it as {shape:?}",
                    row.line, row.key, row.kind
                )),
                Some(_) => {}
            },
        }
    }
    report(problems);
}

#[test]
fn documented_defaults_are_the_code_defaults() {
    let (rows, _) = read_reference(&reference());
    let defaults = format!("{:?}", parse(BASE).expect("the base config parses"));
    let mut problems = Vec::new();
    let mut checked = 0;
    for row in &rows {
        let Some(value) = single_code_span(&row.default) else { continue };
        checked += 1;
        match with_key(&row.key, value).and_then(|text| parse(&text)) {
            Err(e) => problems.push(format!("line {}: `{}` = {value} is refused: {e}", row.line, row.key)),
            Ok(config) if format!("{config:?}") != defaults => problems.push(format!(
                "line {}: `{}` = {value} is documented as the default, but the code's default differs",
                row.line, row.key
            )),
            Ok(_) => {}
        }
    }
    assert!(checked > 40, "only {checked} defaults were written as values: the row format changed?");
    report(problems);
}

#[test]
fn every_toml_block_is_accepted_and_together_they_set_every_key() {
    let (_, blocks) = read_reference(&reference());
    assert!(!blocks.is_empty(), "docs/configuration.md has no ```toml blocks");
    let mut problems = Vec::new();
    let mut shown = BTreeSet::new();
    for block in &blocks {
        match complete(&block.text) {
            Err(e) => problems.push(format!("the TOML block at line {}: {e}", block.line)),
            Ok((whole, table)) => {
                if let Err(e) = parse(&whole) {
                    problems.push(format!("the TOML block at line {} is refused: {e}", block.line));
                }
                leaf_paths(&table, "", &mut shown);
            }
        }
    }
    for key in accepted_keys() {
        if !shown.contains(&key.path) {
            problems.push(format!("no TOML block sets `{}`: show it in the complete example", key.path));
        }
    }
    report(problems);
}

#[test]
fn the_checks_catch_drift() {
    // A row for a key that does not exist, a wrong default, a wrong type: each must be found.
    let (rows, _) = read_reference("| `limits.no_such_key` | integer | `1` | x |\n");
    assert!(!accepted_keys().iter().any(|k| k.path == rows[0].key));
    let wrong_default = with_key("limits.max_recipients", "99").and_then(|t| parse(&t)).unwrap();
    assert_ne!(format!("{wrong_default:?}"), format!("{:?}", parse(BASE).unwrap()));
    assert_ne!(documented_shape("integer"), Some(Shape::String));
    assert!(complete("[limits]\nno_such_key = 1\n").map(|(whole, _)| parse(&whole).is_err()).unwrap());
}
