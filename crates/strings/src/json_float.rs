//! Energies and barriers in JSON (`#[serde(with = "json_float")]`): a finite value is a
//! number; infinity and NaN, which JSON has no number for (serde_json would write `null` and
//! then refuse to read it back as a float), are the strings `"inf"`, `"-inf"` and `"NaN"`, and
//! read back as themselves. A barrier is infinite where no path exists (a line that met NaN),
//! so a results file that holds one is still a file its run can resume from.

use serde::de::Error;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value.is_infinite() {
        serializer.serialize_str(if *value > 0.0 { "inf" } else { "-inf" })
    } else {
        serializer.serialize_f64(*value)
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Float {
        Number(f64),
        Text(String),
    }
    match Float::deserialize(deserializer)? {
        Float::Number(v) => Ok(v),
        Float::Text(t) => from_text(&t).ok_or_else(|| {
            D::Error::custom(format!(
                "expected a number, \"inf\", \"-inf\" or \"NaN\", got \"{t}\""
            ))
        }),
    }
}

/// The value a non-finite float's spelling stands for.
pub fn from_text(text: &str) -> Option<f64> {
    match text {
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => None,
    }
}

/// The same for an optional value (`null`: none).
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Float(#[serde(with = "super")] f64);
        Ok(Option::<Float>::deserialize(deserializer)?.map(|f| f.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Row {
        #[serde(with = "super")]
        value: f64,
        #[serde(with = "super::option")]
        maybe: Option<f64>,
    }

    #[test]
    fn every_float_reads_back_as_itself() {
        for value in [
            0.25,
            -3.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e-300,
        ] {
            for maybe in [None, Some(value)] {
                let text = serde_json::to_string(&Row { value, maybe }).unwrap();
                let back: Row = serde_json::from_str(&text).unwrap();
                assert_eq!(back.value.to_bits(), value.to_bits(), "{text}");
                assert_eq!(
                    back.maybe.map(f64::to_bits),
                    maybe.map(f64::to_bits),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn other_text_and_null_are_refused() {
        for text in [
            r#"{"value": "infinity", "maybe": null}"#,
            r#"{"value": null, "maybe": null}"#,
            r#"{"value": 1.0, "maybe": "x"}"#,
        ] {
            assert!(serde_json::from_str::<Row>(text).is_err(), "{text}");
        }
    }
}
