//! The JSON Schemas in `schemas/` are generated from the Rust types and cannot drift: this test
//! regenerates them and compares (run with `UPDATE_SCHEMAS=1` to rewrite them after a change).
//! It also checks that the input schema and the parser agree on every event type's fields.

use std::path::Path;

#[test]
fn schemas_match_the_types() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in chipledger::schema::all() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = directory.join(name);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "schemas differ from the types: {stale:?}; run `UPDATE_SCHEMAS=1 cargo test --test schemas`"
    );
}

#[test]
fn the_input_schema_and_the_parser_agree() {
    let schema =
        serde_json::to_value(schemars::schema_for!(chipledger::schema::InputEvent)).unwrap();
    let variants = schema["oneOf"]
        .as_array()
        .expect("one schema per event type");
    assert_eq!(variants.len(), chipledger::codec::INPUT_TYPES.len());
    for variant in variants {
        let properties = variant["properties"].as_object().unwrap();
        let event_type = properties["type"]["const"].as_str().unwrap();
        let required: Vec<&str> = variant["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        let (parser_required, parser_optional) = chipledger::input::field_names_of(event_type);
        let mut want_required: Vec<&str> = vec!["type", "id", "effective"];
        want_required.extend_from_slice(&parser_required);
        let mut got_required = required.clone();
        got_required.sort();
        want_required.sort();
        assert_eq!(got_required, want_required, "{event_type}: required fields");
        let mut optional: Vec<&str> = properties
            .keys()
            .map(String::as_str)
            .filter(|name| !required.contains(name))
            .collect();
        optional.sort();
        let mut want_optional = parser_optional.to_vec();
        want_optional.sort();
        assert_eq!(optional, want_optional, "{event_type}: optional fields");
        assert_eq!(
            variant["additionalProperties"], false,
            "{event_type}: unknown fields are refused"
        );
    }
}
