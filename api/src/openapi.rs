//! The API types' schemas as the `components/schemas` section of
//! `docs/openapi.yaml`.

use serde_json::Value;

use crate::schema::Schema;
use crate::*;

/// The line before the generated schemas in `docs/openapi.yaml`.
pub const BEGIN: &str = "    # Generated from the maas-api crate's types: do not edit by hand (MAAS_WRITE_OPENAPI=1 cargo test -p maas-api rewrites it).";
/// The line after them.
pub const END: &str = "    # End of the generated schemas.";

fn component<T: Schema>() -> (&'static str, Value) {
    (T::NAME, T::schema())
}

/// Every API type's component, in the order the document lists them.
pub fn components() -> Vec<(&'static str, Value)> {
    vec![
        component::<ModelList>(),
        component::<ListedModel>(),
        component::<ModelSummary>(),
        component::<ModelDetail>(),
        component::<VersionDetail>(),
        component::<VersionState>(),
        component::<Artifact>(),
        component::<Lineage>(),
        component::<AliasState>(),
        component::<SplitEntry>(),
        component::<PublishRequest>(),
        component::<ArtifactName>(),
        component::<Published>(),
        component::<VersionDeleted>(),
        component::<AliasRequest>(),
        component::<AliasSet>(),
        component::<AliasDeleted>(),
        component::<RolledBack>(),
        component::<SplitRequest>(),
        component::<SplitSet>(),
        component::<ArtifactStored>(),
        component::<ClusterStatus>(),
        component::<EtcdHealth>(),
        component::<NodeLink>(),
        component::<NodeLoad>(),
        component::<ModelQueue>(),
        component::<Draining>(),
        component::<KeyCreate>(),
        component::<KeyLimits>(),
        component::<KeyInfo>(),
        component::<KeyIssued>(),
        component::<KeyList>(),
        component::<KeyRevoked>(),
        component::<TenantInfo>(),
        component::<TenantList>(),
        component::<LiveStatus>(),
        component::<LiveVersion>(),
        component::<Whoami>(),
        component::<ConsoleTick>(),
        component::<ConsoleVersion>(),
        component::<InputDriftScore>(),
        component::<Alert>(),
        component::<AlertList>(),
        component::<Evaluation>(),
        component::<UsageReport>(),
        component::<UsageLine>(),
        component::<VersionScores>(),
        component::<FeedbackCounts>(),
    ]
}

/// The generated section, markers included, as it appears in the document.
pub fn section() -> String {
    let mut out = format!("{BEGIN}\n");
    for (name, schema) in components() {
        out.push_str(&format!("    {name}:\n"));
        write_block(&mut out, &schema, 6);
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// `document` with its generated section replaced by [`section`], or `None`
/// when it has no markers.
pub fn rewrite(document: &str) -> Option<String> {
    let start = document.find(BEGIN)?;
    let end = document[start..].find(END)? + start + END.len() + 1;
    Some(format!("{}{}{}", &document[..start], section(), document.get(end..).unwrap_or_default()))
}

/// The generated section as it stands in `document`.
pub fn current_section(document: &str) -> Option<&str> {
    let start = document.find(BEGIN)?;
    let end = document[start..].find(END)? + start + END.len() + 1;
    document.get(start..end)
}

/// Writes an object's fields as block YAML at `indent`.
fn write_block(out: &mut String, value: &Value, indent: usize) {
    let Value::Object(map) = value else { return };
    for (key, field) in map {
        if is_empty_description(key, field) {
            continue;
        }
        let pad = " ".repeat(indent);
        // A schema's properties get a line each.
        if key != "properties" && is_flat(field) {
            out.push_str(&format!("{pad}{key}: {}\n", flow(field)));
        } else {
            out.push_str(&format!("{pad}{key}:\n"));
            write_block(out, field, indent + 2);
        }
    }
}

fn is_empty_description(key: &str, value: &Value) -> bool {
    key == "description" && value.as_str() == Some("")
}

/// Whether a value is written on one line: a scalar, an object whose
/// fields are scalars, lists of scalars or one-line objects, or a list of
/// such values.
fn is_flat(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().all(|v| match v {
            Value::Object(inner) => inner.values().all(|w| !w.is_object() && !w.is_array()),
            Value::Array(items) => items.iter().all(|w| !w.is_object() && !w.is_array()),
            _ => true,
        }),
        Value::Array(items) => items.iter().all(is_flat),
        _ => true,
    }
}

/// A value in YAML's flow style.
fn flow(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {}", flow(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::String(text) if is_plain(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether a string can be written without quotes.
fn is_plain(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(text.to_ascii_lowercase().as_str(), "true" | "false" | "null" | "yes" | "no" | "on" | "off")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn document_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml")
    }

    #[test]
    fn the_document_carries_the_schemas_of_the_api_types() {
        let path = document_path();
        let document = std::fs::read_to_string(&path).unwrap();
        if std::env::var_os("MAAS_WRITE_OPENAPI").is_some() {
            let rewritten = rewrite(&document).expect("docs/openapi.yaml has the generated-section markers");
            std::fs::write(&path, rewritten).unwrap();
            return;
        }
        let current = current_section(&document).expect("docs/openapi.yaml has the generated-section markers");
        assert!(
            current == section(),
            "docs/openapi.yaml's schemas differ from the maas-api types; \
             run MAAS_WRITE_OPENAPI=1 cargo test -p maas-api to rewrite them. Expected:\n{}",
            section()
        );
    }

    #[test]
    fn every_reference_names_a_component() {
        let document = std::fs::read_to_string(document_path()).unwrap();
        let names: Vec<&str> = document
            .lines()
            .filter_map(|line| line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')))
            .filter(|name| !name.starts_with(' '))
            .collect();
        for (index, _) in document.match_indices("#/components/schemas/") {
            let rest = &document[index + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(names.contains(&name.as_str()), "docs/openapi.yaml refers to a missing schema '{name}'");
        }
    }

    #[test]
    fn schemas_follow_the_fields() {
        let schema = SplitSet::schema();
        assert_eq!(schema["required"], serde_json::json!(["model", "split"]));
        assert_eq!(schema["properties"]["split"]["items"]["$ref"], "#/components/schemas/SplitEntry");
        let lineage = Lineage::schema();
        assert_eq!(lineage["required"], serde_json::json!(["uploaded_by", "uploaded_at"]));
        assert_eq!(lineage["properties"]["parent"]["type"], "integer");
        assert_eq!(flow(&serde_json::json!({"a": "b c", "d": [1, 2]})), r#"{a: "b c", d: [1, 2]}"#);
    }

    #[test]
    fn api_types_read_what_they_write() {
        let detail = ModelDetail {
            name: "m".into(),
            revision: 3,
            versions: vec![],
            ready_versions: vec![1],
            aliases: [("production".to_string(), AliasState { version: 1, history: vec![] })].into(),
            split: vec![SplitEntry { version: 1, weight: 100 }],
            loaded: true,
        };
        let text = serde_json::to_string(&detail).unwrap();
        assert_eq!(serde_json::from_str::<ModelDetail>(&text).unwrap(), detail);
    }
}
