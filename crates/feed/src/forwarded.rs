//! Worker log lines re-logged by the supervisor: the members of a worker's JSON event are carried
//! verbatim in one field, [`FORWARDED_FIELDS`], and the service's JSON formatter lifts them to top
//! level ([`lift`]), so an event forwarded from a worker reads exactly like the same event logged
//! in-process. `tracing` needs field names at compile time; the worker's events carry theirs at
//! run time, and a hand-kept table of every event's fields would drift the day a field is added.

use std::fmt;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The field whose value (JSON object members as text) is spliced into the line.
pub const FORWARDED_FIELDS: &str = "forwarded_fields";

/// `line` with `,"forwarded_fields":"<members>"` replaced by `,<members>`; `None` if the line does
/// not hold a well-formed forwarded field (it is then written unchanged, nothing lost).
pub fn lift(line: &str) -> Option<String> {
    let key = format!(",\"{FORWARDED_FIELDS}\":");
    let start = line.find(&key)?;
    let value_at = start + key.len();
    let mut values = serde_json::Deserializer::from_str(&line[value_at..]).into_iter::<String>();
    let members = values.next()?.ok()?;
    let value_end = value_at + values.byte_offset();
    let mut out = String::with_capacity(line.len());
    out.push_str(&line[..start]);
    if !members.trim().is_empty() {
        out.push(',');
        out.push_str(&members);
    }
    out.push_str(&line[value_end..]);
    Some(out)
}

/// The members of the JSON object `line` (in their order, values verbatim) except `skip`, as the
/// text [`FORWARDED_FIELDS`] expects (`"a":1,"b":"x"`). `None` if `line` is not a JSON object.
pub fn members_except(line: &str, skip: &[&str]) -> Option<String> {
    struct Members<'s>(&'s [&'s str]);
    impl<'de> Visitor<'de> for Members<'_> {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
            let mut out = String::new();
            while let Some((k, v)) = map.next_entry::<String, &RawValue>()? {
                if self.0.contains(&k.as_str()) {
                    continue;
                }
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(&k).map_err(serde::de::Error::custom)?);
                out.push(':');
                out.push_str(v.get());
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    de.deserialize_map(Members(skip)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn members_keep_order_and_exact_values_and_skip_what_is_asked() {
        let line = r#"{"timestamp":"t","level":"INFO","event":"e","symbol":"BTCUSDT","n":1.50,"o":{"a":[1]},"pid":9}"#;
        let m = members_except(line, &["timestamp", "level", "event", "pid"]).unwrap();
        assert_eq!(m, r#""symbol":"BTCUSDT","n":1.50,"o":{"a":[1]}"#);
        assert!(members_except("not json", &[]).is_none());
        assert!(members_except("[1,2]", &[]).is_none());
    }

    #[test]
    fn lifted_members_become_top_level_fields() {
        let members = r#""symbol":"BTCUSDT","connection":2"#;
        let inner = serde_json::to_string(members).unwrap();
        let line = format!(
            "{{\"timestamp\":\"t\",\"level\":\"INFO\",\"event\":\"bybit_connector_connected\",\"pid\":7,\"{FORWARDED_FIELDS}\":{inner}}}\n"
        );
        let out = lift(&line).unwrap();
        assert!(out.ends_with('\n'));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["symbol"], "BTCUSDT");
        assert_eq!(v["connection"], 2);
        assert_eq!(v["pid"], 7);
        assert!(v.get(FORWARDED_FIELDS).is_none(), "{out}");
        // In the middle of the line, and empty.
        let line = format!("{{\"a\":1,\"{FORWARDED_FIELDS}\":\"\",\"b\":2}}");
        assert_eq!(lift(&line).unwrap(), r#"{"a":1,"b":2}"#);
        assert!(lift(r#"{"a":1}"#).is_none());
    }
}
