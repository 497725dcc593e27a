//! The configs reference (`docs/src/reference/configs.md`) cannot drift from the config types:
//! this test lists every key and every named value the types accept and fails on any the page
//! does not mention.
//!
//! The list comes from serde itself rather than from a hand-kept copy. Every config type
//! denies unknown fields, so parsing a config that holds one unknown key at some place makes
//! serde name the keys that place accepts ("unknown field `x`, expected one of ..."); a
//! tagged enum answers an unknown tag with its variants, a list is probed through one
//! element. Walking down from the top level reaches every key any config can hold. As a check
//! on the walk, every key of every committed `configs/*.toml` must be among those it found.

use std::collections::BTreeSet;

use toml::{Table, Value};

use crate::config::ExperimentConfig;

const PROBE: &str = "zzz_probe";

/// One step from a table to a value inside it.
#[derive(Clone, Debug)]
enum Step {
    Field(String),
    /// The first element of a list.
    Element,
    /// A tag (`kind = "mnist"`) that the table holding the rest of the path carries.
    Tag(String, String),
}

/// What the walk found: key paths (`dss.alpha`; list elements and tags leave no trace in a
/// path) and named values (`("dss.insert_at", "midpoint")`, `("task.kind", "mnist")`).
#[derive(Default)]
struct Found {
    keys: BTreeSet<String>,
    values: BTreeSet<(String, String)>,
}

fn path_of(steps: &[Step]) -> String {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Field(name) => Some(name.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The value `leaf` placed at `steps` below an otherwise empty table.
fn place(steps: &[Step], leaf: Value) -> Value {
    let Some((first, rest)) = steps.split_first() else {
        return leaf;
    };
    match first {
        Step::Field(name) => Value::Table(Table::from_iter([(name.clone(), place(rest, leaf))])),
        Step::Element => Value::Array(vec![place(rest, leaf)]),
        Step::Tag(tag, variant) => {
            let mut inner = place(rest, leaf);
            let Value::Table(table) = &mut inner else {
                panic!("a tag stands in a table");
            };
            table.insert(tag.clone(), Value::String(variant.clone()));
            inner
        }
    }
}

/// serde's message for a config holding `leaf` at `steps` and nothing else.
fn error_at(steps: &[Step], leaf: Value) -> String {
    let text = toml::to_string(&place(steps, leaf)).expect("probes serialize");
    match toml::from_str::<ExperimentConfig>(&text) {
        Ok(_) => String::new(),
        Err(e) => e.message().to_string(),
    }
}

fn probe_table() -> Value {
    Value::Table(Table::from_iter([(PROBE.to_string(), Value::Integer(1))]))
}

/// The backquoted names after "expected" in serde's message.
fn expected(message: &str) -> Vec<String> {
    let Some((_, list)) = message.split_once("expected") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn walk(steps: &[Step], found: &mut Found) {
    assert!(steps.len() < 16, "config types nest too deep at {steps:?}");
    let with = |step: Step| {
        let mut next = steps.to_vec();
        next.push(step);
        next
    };
    let message = error_at(steps, probe_table());
    if message.starts_with(&format!("unknown field `{PROBE}`")) {
        // A struct, or a variant of a tagged enum.
        let fields = expected(&message);
        for field in &fields {
            let next = with(Step::Field(field.clone()));
            found.keys.insert(path_of(&next));
            // A residual block's `body` and `shortcut` are lists of layers again, whose keys
            // are the layers' own: the recursion is not walked.
            let in_layers = steps
                .iter()
                .any(|s| matches!(s, Step::Field(name) if name == "layers"));
            if !(in_layers && (field == "body" || field == "shortcut")) {
                walk(&next, found);
            }
        }
        // `[task.net]` holds a net described layer by layer, or a preset named by `preset`.
        if fields.iter().any(|f| f == "layers") {
            let leaf = Value::Table(Table::from_iter([(
                "preset".to_string(),
                Value::String(PROBE.into()),
            )]));
            let variants = error_at(steps, leaf);
            if variants.starts_with(&format!("unknown variant `{PROBE}`")) {
                let tag_path = path_of(&with(Step::Field("preset".into())));
                found.keys.insert(tag_path.clone());
                for variant in expected(&variants) {
                    found.values.insert((tag_path.clone(), variant.clone()));
                    walk(&with(Step::Tag("preset".into(), variant)), found);
                }
            }
        }
    } else if let Some(tag) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        // An internally tagged enum: its tag names the variant.
        let tag = tag.to_string();
        let tag_path = path_of(&with(Step::Field(tag.clone())));
        let leaf = Value::Table(Table::from_iter([(
            tag.clone(),
            Value::String(PROBE.into()),
        )]));
        let variants = error_at(steps, leaf);
        if !variants.starts_with(&format!("unknown variant `{PROBE}`")) {
            // The probe was let through and serde went on to a required key elsewhere: a
            // variant without fields (`{ kind = "relu" }`) of an internally tagged enum,
            // which serde lets carry any other key.
            return;
        }
        found.keys.insert(tag_path.clone());
        for variant in expected(&variants) {
            found.values.insert((tag_path.clone(), variant.clone()));
            walk(&with(Step::Tag(tag.clone(), variant)), found);
        }
    } else if message.starts_with(&format!("unknown variant `{PROBE}`")) {
        // An externally tagged enum: a name (a unit variant) or a one-key table.
        for variant in expected(&message) {
            let next = with(Step::Field(variant.clone()));
            let unit = error_at(&next, probe_table());
            if unit.contains("expected unit") || unit.contains("expected empty table") {
                found.values.insert((path_of(steps), variant));
            } else {
                found.keys.insert(path_of(&next));
                walk(&next, found);
            }
        }
    } else if message.contains("invalid type: map, expected a sequence") {
        walk(&with(Step::Element), found);
    }
    // Anything else is a leaf: a number, a string, a path, a fixed-size array or an untagged
    // enum of those (`padding = 2` or `"same"`).
}

/// Every key path of one committed config.
fn config_keys(value: &Value, at: &str, keys: &mut BTreeSet<String>) {
    match value {
        Value::Table(table) => {
            for (key, inner) in table {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                keys.insert(path.clone());
                config_keys(inner, &path, keys);
            }
        }
        Value::Array(items) => {
            for item in items {
                config_keys(item, at, keys);
            }
        }
        _ => {}
    }
}

#[test]
fn every_config_key_is_in_the_configs_reference() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Found::default();
    walk(&[], &mut found);
    assert!(
        found.keys.contains("dss.alpha") && found.keys.contains("task.net.layers.kind"),
        "the walk lost its way: {:?}",
        found.keys
    );

    // The walk must reach every key the committed configs use.
    let mut unreached = Vec::new();
    for entry in std::fs::read_dir(root.join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let value: Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let mut keys = BTreeSet::new();
            config_keys(&value, "", &mut keys);
            for key in keys {
                // The externally tagged values' keys (`weights = { uniform = ... }`) are keys
                // of the walk too; a tag's value is not a key.
                if !found.keys.contains(&key) {
                    unreached.push(format!("{}: {key}", path.display()));
                }
            }
        }
    }
    assert!(
        unreached.is_empty(),
        "keys in committed configs that the walk of the config types did not reach:\n{}",
        unreached.join("\n")
    );

    let page_path = root.join("docs/src/reference/configs.md");
    let page = std::fs::read_to_string(&page_path).unwrap();
    let mut missing: Vec<String> = found
        .keys
        .iter()
        .filter(|key| !page.contains(&format!("`{key}`")))
        .map(|key| format!("key `{key}`"))
        .collect();
    // A named value is documented on a line that names its key.
    for (key, value) in &found.values {
        let documented = page
            .lines()
            .any(|line| line.contains(&format!("`{key}`")) && line.contains(&format!("`{value}`")));
        if !documented {
            missing.push(format!("value `{value}` of `{key}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "{} does not document what the config types accept:\n{}\n(all keys found: {:?})",
        page_path.display(),
        missing.join("\n"),
        found.keys
    );
}
