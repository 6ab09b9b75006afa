//! The object-metadata validation every kube-apiserver write goes through: names, labels,
//! annotations. Schema validation of the rest of the object is not done (see the module doc).

use serde_json::Value;

use super::resources::ResourceType;

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Names of these kinds only have to be valid path segments (RBAC names like `system:auth-delegator`).
fn path_segment_names(resource: &ResourceType) -> bool {
    resource.group == "rbac.authorization.k8s.io"
}

/// `(field, message)` when a name is not valid for the resource.
pub(crate) fn check_name(resource: &ResourceType, name: &str) -> Option<(String, String)> {
    let field = "metadata.name".to_string();
    if name.is_empty() {
        return Some((
            field,
            "Required value: name or generateName is required".to_string(),
        ));
    }
    if path_segment_names(resource) {
        if name == "." || name == ".." || name.contains('/') || name.contains('%') {
            return Some((
                field,
                format!("Invalid value: \"{name}\": may not contain '/' or '%' or be '.' or '..'"),
            ));
        }
        return None;
    }
    if resource.group.is_empty() && resource.plural == "namespaces" {
        if !is_dns_label(name) {
            return Some((
                field,
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case \
                     alphanumeric characters or '-', and must start and end with an alphanumeric character"
                ),
            ));
        }
        return None;
    }
    if !is_dns_subdomain(name) {
        return Some((
            field,
            format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ));
    }
    None
}

/// A qualified name (`example.com/name` or `name`): what label and annotation keys must be.
fn qualified_name_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if !is_dns_subdomain(prefix) {
            return Some("prefix part must be a lowercase RFC 1123 subdomain".to_string());
        }
    }
    if name.is_empty() || name.len() > 63 {
        return Some("name part must be no more than 63 characters and non-empty".to_string());
    }
    let alnum_edges = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !alnum_edges
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Some(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
             with an alphanumeric character"
                .to_string(),
        );
    }
    None
}

fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.len() > 63 {
        return Some("must be no more than 63 characters".to_string());
    }
    let alnum_edges = value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !alnum_edges
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Some(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character"
                .to_string(),
        );
    }
    None
}

/// Validation errors in `metadata.labels` and `metadata.annotations`, as `(field, message)`.
pub(crate) fn check_metadata(object: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if let Some(labels) = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        for (key, value) in labels {
            if let Some(why) = qualified_name_error(key) {
                errors.push((
                    "metadata.labels".to_string(),
                    format!("Invalid value: \"{key}\": {why}"),
                ));
            }
            match value.as_str() {
                Some(v) => {
                    if let Some(why) = label_value_error(v) {
                        errors.push((
                            "metadata.labels".to_string(),
                            format!("Invalid value: \"{v}\": {why}"),
                        ));
                    }
                }
                None => errors.push((
                    "metadata.labels".to_string(),
                    format!("Invalid value: label {key} must be a string"),
                )),
            }
        }
    }
    if let Some(annotations) = object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (key, value) in annotations {
            if let Some(why) = qualified_name_error(&key.to_ascii_lowercase()) {
                errors.push((
                    "metadata.annotations".to_string(),
                    format!("Invalid value: \"{key}\": {why}"),
                ));
            }
            if !value.is_string() {
                errors.push((
                    "metadata.annotations".to_string(),
                    format!("Invalid value: annotation {key} must be a string"),
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_follow_kubernetes_syntax() {
        let ok =
            json!({ "metadata": { "labels": { "app.kubernetes.io/name": "web", "empty": "" } } });
        assert!(check_metadata(&ok).is_empty());
        let too_long = "x".repeat(64);
        let bad =
            json!({ "metadata": { "labels": { "app": too_long, "-bad": "v", "a/b/c": "v" } } });
        assert_eq!(check_metadata(&bad).len(), 3);
    }
}
