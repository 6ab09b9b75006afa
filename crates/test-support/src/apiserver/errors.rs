//! API errors as the `Status` objects kube-apiserver sends (`kind: Status`, `status: Failure`).

use serde_json::{json, Value};

/// A failed API request: the HTTP code, the machine-readable reason and the message a user sees.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// The identity of the object an error is about, for `Status.details`.
pub(crate) struct Subject<'a> {
    pub group: &'a str,
    /// Plural resource name (`configmaps`), as the real server puts it in `details.kind`.
    pub resource: &'a str,
    pub name: &'a str,
}

impl Subject<'_> {
    /// `configmaps` or `deployments.apps`, the way kube-apiserver names a resource in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut details = json!({ "name": self.name, "kind": self.resource });
        if !self.group.is_empty() {
            details["group"] = json!(self.group);
        }
        details
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(subject: &Subject<'_>) -> Self {
        ApiError {
            details: Some(subject.details()),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", subject.qualified(), subject.name),
            )
        }
    }

    /// 404 for a path that names no known resource.
    pub fn unknown_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(subject: &Subject<'_>) -> Self {
        ApiError {
            details: Some(subject.details()),
            ..Self::new(
                409,
                "AlreadyExists",
                format!(
                    "{} \"{}\" already exists",
                    subject.qualified(),
                    subject.name
                ),
            )
        }
    }

    /// Optimistic-concurrency failure: the caller's resourceVersion is not the stored one.
    pub fn stale(subject: &Subject<'_>) -> Self {
        Self::conflict(
            subject,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict(subject: &Subject<'_>, why: &str) -> Self {
        ApiError {
            details: Some(subject.details()),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {why}",
                    subject.qualified(),
                    subject.name
                ),
            )
        }
    }

    /// Server-side apply conflicts: one cause per field another manager owns.
    pub fn apply_conflicts(subject: &Subject<'_>, conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\""),
                    "field": field,
                })
            })
            .collect();
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with \"{manager}\": {field}"))
            .collect();
        let noun = if conflicts.len() == 1 {
            "conflict"
        } else {
            "conflicts"
        };
        let mut details = subject.details();
        details["causes"] = Value::Array(causes);
        ApiError {
            details: Some(details),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {} {noun}: {}",
                    conflicts.len(),
                    listed.join("\n")
                ),
            )
        }
    }

    pub fn forbidden(subject: &Subject<'_>, message: String) -> Self {
        ApiError {
            details: Some(subject.details()),
            ..Self::new(403, "Forbidden", message)
        }
    }

    /// 422: the object fails validation. `kind` is the object's kind (the real server names the kind here,
    /// not the resource), `causes` are `(field path, message)`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<(String, String)>) -> Self {
        let text: Vec<String> = causes
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect();
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(field, message)| json!({ "reason": "FieldValueInvalid", "message": message, "field": field }))
            .collect();
        let mut details = json!({ "name": name, "kind": kind, "causes": causes });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        ApiError {
            details: Some(details),
            ..Self::new(
                422,
                "Invalid",
                format!("{qualified} \"{name}\" is invalid: {}", text.join(", ")),
            )
        }
    }

    /// 422 without field causes (a JSON patch that cannot be applied, …).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "the request body is too large",
        )
    }

    /// 410: a resourceVersion or continue token from before the compaction point.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `Status` object sent as the response body (or as the object of a watch `ERROR` event).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// The `Status` a DELETE answers with when the object is gone at once.
pub(crate) fn success_status(subject: &Subject<'_>, uid: &str) -> Value {
    let mut details = subject.details();
    details["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
