//! The few text fields a dependent reads of a step's record: what a mesh
//! step reads of every service's image or sign step
//! (`StepContext::dep_fields`).
//!
//! The log writes each record's `record` field first
//! (`engine::record::RecordView`), so the named fields are parsed out of it
//! and everything else is skipped unread: no JSON value is built for the
//! fields not asked for, nor for the rest of the record. The record is
//! trusted as a whole one is: only if its bytes hash to the digest its step
//! names.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{BuildState, StepEntry};

/// The values of the fields asked for, in the order asked; `Err(name)`: the
/// first of them that is missing or not text.
pub type Fields = Result<Vec<String>, String>;

impl StepEntry {
    /// The text fields `names` of the step's `record`: from its record if it
    /// is parsed already, else from the log without parsing the rest. `None`
    /// as [`Self::record`], or if the bytes do not start with the `record`
    /// field (whoever asked reads the whole record from the action cache).
    pub fn record_fields(&self, state: &BuildState, names: &[&str]) -> Option<Fields> {
        if let Some(parsed) = self.parsed.get() {
            return parsed.as_ref().map(|r| fields_of(&r.record, names));
        }
        text_fields(&state.records.read(&self.record)?, names)
    }
}

/// The text fields `names` of a parsed `record`.
pub fn fields_of(record: &serde_json::Value, names: &[&str]) -> Fields {
    names
        .iter()
        .map(|name| match record.get(*name) {
            Some(serde_json::Value::String(text)) => Ok(text.clone()),
            _ => Err((*name).to_string()),
        })
        .collect()
}

/// The text fields `names` of the `record` field that starts an action
/// record's JSON `bytes`, the rest of it left unread; `None` where the bytes
/// start otherwise, or that field is not an object that parses.
pub(super) fn text_fields(bytes: &[u8], names: &[&str]) -> Option<Fields> {
    let rest = bytes.strip_prefix(b"{\"record\":")?;
    let mut json = serde_json::Deserializer::from_slice(rest);
    let found = json.deserialize_map(Named { names }).ok()?;
    Some(
        found
            .into_iter()
            .zip(names)
            .map(|(value, name)| value.ok_or_else(|| (*name).to_string()))
            .collect(),
    )
}

/// Reads an object, keeping the text of the fields `names` (the last, if a
/// name is there twice, as a parsed value would) and skipping the others.
struct Named<'n> {
    names: &'n [&'n str],
}

impl<'de> Visitor<'de> for Named<'_> {
    type Value = Vec<Option<String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = vec![None; self.names.len()];
        while let Some(at) = map.next_key_seed(Key { names: self.names })? {
            match at {
                Some(i) => {
                    found[i] = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(text) => Some(text),
                        _ => None,
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// A key of the object: which of `names` it is, if any.
struct Key<'n> {
    names: &'n [&'n str],
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, key: D) -> Result<Self::Value, D::Error> {
        key.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.names.iter().position(|name| *name == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_asked_for_are_the_fields_a_parsed_record_gives() {
        let record = serde_json::json!({
            "reference": "r:1",
            "layers": ["x", {"y": "}\"", "z": [1, 2.5, null, true]}],
            "n": 7,
            "manifest_digest": "sha256:ab",
            "esc\"aped": "q\\u00e9",
        });
        let bytes = format!("{{\"record\":{record},\"step\":\"image:a\"}}");
        for names in [
            &["reference", "manifest_digest"][..],
            &["manifest_digest", "reference"],
            &["esc\"aped"],
            &["reference", "n"],
            &["missing", "reference"],
            &["layers"],
            &[],
        ] {
            assert_eq!(
                text_fields(bytes.as_bytes(), names),
                Some(fields_of(&record, names)),
                "{names:?}"
            );
        }
        assert_eq!(
            text_fields(bytes.as_bytes(), &["reference", "n"]),
            Some(Err("n".to_string())),
            "a field that is not text is named"
        );
    }

    #[test]
    fn a_name_given_twice_reads_as_the_last_as_a_parsed_record_would() {
        let bytes = br#"{"record":{"a":"1","b":"x","a":"2"}}"#;
        let parsed: serde_json::Value =
            serde_json::from_str(r#"{"a":"1","b":"x","a":"2"}"#).unwrap();
        assert_eq!(text_fields(bytes, &["a"]), Some(fields_of(&parsed, &["a"])));
        assert_eq!(text_fields(bytes, &["a"]), Some(Ok(vec!["2".to_string()])));
    }

    #[test]
    fn bytes_that_do_not_start_with_the_record_or_do_not_parse_give_none() {
        let names = &["a"][..];
        // As the action cache writes a record (`record` not first).
        assert_eq!(
            text_fields(br#"{"step":"x","record":{"a":"1"}}"#, names),
            None
        );
        // Cut short, damaged, or not an object.
        assert_eq!(text_fields(br#"{"record":{"a":"1""#, names), None);
        assert_eq!(text_fields(br#"{"record":{"a" "1"}}"#, names), None);
        assert_eq!(text_fields(br#"{"record":null}"#, names), None);
        // What follows the `record` field is not read.
        assert_eq!(
            text_fields(br#"{"record":{"a":"1"},garbage"#, names),
            Some(Ok(vec!["1".to_string()]))
        );
    }
}
