//! Property tests of config loading: every committed config with one key set to a random
//! value (huge, negative, fractional, non-finite, of the wrong type, an empty or long array)
//! or removed, or an unknown key added, parses to a valid config or an error, never a panic.

use proptest::prelude::*;
use toml::Value;

use crate::config::ExperimentConfig;

/// A committed config: its path, its TOML, and the key paths of its leaves.
type Parsed = (String, Value, Vec<Vec<String>>);

/// The committed configs, parsed as TOML, with the dotted paths of their leaf keys.
fn configs() -> &'static Vec<Parsed> {
    static CONFIGS: std::sync::OnceLock<Vec<Parsed>> = std::sync::OnceLock::new();
    CONFIGS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut out = Vec::new();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        names.sort();
        for path in names {
            let value: Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let mut keys = Vec::new();
            leaves(&value, &mut Vec::new(), &mut keys);
            out.push((path.display().to_string(), value, keys));
        }
        out
    })
}

fn leaves(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Table(table) => {
            for (key, v) in table {
                prefix.push(key.clone());
                leaves(v, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn set(value: &mut Value, path: &[String], new: Option<Value>) {
    let Value::Table(table) = value else { return };
    if path.len() == 1 {
        match new {
            Some(v) => {
                table.insert(path[0].clone(), v);
            }
            None => {
                table.remove(&path[0]);
            }
        }
    } else if let Some(inner) = table.get_mut(&path[0]) {
        set(inner, &path[1..], new);
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MAX),
            Just(i64::MIN),
            Just(1 << 40),
            any::<i64>()
        ]
        .prop_map(Value::Integer),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(1e-300),
            Just(1e300),
            any::<f64>()
        ]
        .prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        "[a-z_]{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        1 => prop::collection::vec(scalar(), 0..6).prop_map(Value::Array),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn any_one_key_changed_parses_or_errs(
        config in any::<prop::sample::Index>(),
        key in any::<prop::sample::Index>(),
        new in prop::option::weighted(0.9, value()),
    ) {
        let (name, base, keys) = &configs()[config.index(configs().len())];
        let path = &keys[key.index(keys.len())];
        let mut edited = base.clone();
        set(&mut edited, path, new);
        // TOML cannot write every edit (a table after a value, say): nothing to parse then.
        let Ok(text) = toml::to_string(&edited) else { return Ok(()) };
        let _ = (name, ExperimentConfig::parse(&text));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it(
        config in any::<prop::sample::Index>(),
        key in any::<prop::sample::Index>(),
        new in value(),
    ) {
        let (name, base, keys) = &configs()[config.index(configs().len())];
        let mut path = keys[key.index(keys.len())].clone();
        *path.last_mut().unwrap() = "no_such_key".into();
        let mut edited = base.clone();
        set(&mut edited, &path, Some(new));
        let Ok(text) = toml::to_string(&edited) else { return Ok(()) };
        let err = ExperimentConfig::parse(&text).err();
        prop_assert!(err.is_some(), "{name}: {path:?} accepted");
        let message = format!("{:#}", err.unwrap());
        prop_assert!(message.contains("no_such_key"), "{name}: {message}");
    }
}
