//! AdmissionReview decoding and encoding (`admission.k8s.io/v1`, and `v1beta1` answered in kind).
//!
//! The request is decoded into [`ReviewRequest`] with objects kept as raw JSON. The response is
//! written with bylaw's own small types rather than `kube::core::admission::AdmissionResponse`:
//! kube 5 serializes `patch` as an array of numbers rather than base64, builds patches from
//! json-patch 4 (the workspace uses 5) and keeps `patchType` private.

use base64::Engine as _;
use bylaw_runtime::ReviewRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `apiVersion` of an AdmissionReview.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewVersion {
    /// `admission.k8s.io/v1`
    V1,
    /// `admission.k8s.io/v1beta1`
    V1Beta1,
}

impl ReviewVersion {
    /// The `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            ReviewVersion::V1 => "admission.k8s.io/v1",
            ReviewVersion::V1Beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// A decoded AdmissionReview request.
#[derive(Debug)]
pub struct ParsedReview {
    /// Version to answer in.
    pub version: ReviewVersion,
    /// The request.
    pub request: ReviewRequest,
}

/// Why a body is not a usable AdmissionReview.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No uid can be read: the caller gets HTTP 400 with a JSON error.
    Unanswerable(String),
    /// The uid is known: the caller gets an AdmissionReview refusing the request with the reason.
    Invalid {
        /// Version to answer in.
        version: ReviewVersion,
        /// The request uid.
        uid: String,
        /// What is wrong.
        reason: String,
    },
}

fn string_field<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// The envelope of a well-formed review, decoded in one pass straight into [`ReviewRequest`]
/// (its objects built once, not first as a generic document and then copied out of it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    api_version: Option<Value>,
    /// `Some(Value::Null)` for `"kind": null`, which is not an AdmissionReview.
    #[serde(default, deserialize_with = "present")]
    kind: Option<Value>,
    request: Option<ReviewRequest>,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Decodes an AdmissionReview body.
pub fn parse_review(body: &[u8]) -> Result<ParsedReview, ParseError> {
    parse_review_with(body, false)
}

/// Decodes an AdmissionReview body, leaving `metadata.managedFields` out of its objects when
/// `leave_out_managed_fields` (no served policy can read them, see
/// [`bylaw_runtime::decoding_reviews`]); the request says so in `managed_fields_left_out`.
/// Every error answer is the same either way.
pub fn parse_review_with(
    body: &[u8],
    leave_out_managed_fields: bool,
) -> Result<ParsedReview, ParseError> {
    let mut parsed =
        bylaw_runtime::decoding_reviews(leave_out_managed_fields, || parse_review_whole(body))?;
    parsed.request.managed_fields_left_out = leave_out_managed_fields;
    Ok(parsed)
}

fn parse_review_whole(body: &[u8]) -> Result<ParsedReview, ParseError> {
    // Any body the direct decoding does not take (not UTF-8, bad JSON, a duplicate field, a
    // malformed request, a missing uid) goes through the step-by-step path, which says what is
    // wrong. UTF-8 is checked once for the whole body: decoding from bytes checks every string
    // on its own, ≈ 5% of the server's instructions per review.
    let Ok(text) = std::str::from_utf8(body) else {
        return parse_review_in_steps(body);
    };
    match serde_json::from_str::<Envelope>(text) {
        Ok(Envelope {
            api_version,
            kind,
            request: Some(request),
        }) if !request.uid.is_empty() => {
            let api_version = api_version.as_ref().and_then(Value::as_str);
            let version = match api_version {
                None | Some("admission.k8s.io/v1") => ReviewVersion::V1,
                Some("admission.k8s.io/v1beta1") => ReviewVersion::V1Beta1,
                Some(_) => return parse_review_in_steps(body),
            };
            if kind.is_some_and(|kind| kind.as_str() != Some("AdmissionReview")) {
                return parse_review_in_steps(body);
            }
            Ok(ParsedReview { version, request })
        }
        _ => parse_review_in_steps(body),
    }
}

/// Decodes an AdmissionReview body field by field, to name what is wrong with it.
fn parse_review_in_steps(body: &[u8]) -> Result<ParsedReview, ParseError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError::Unanswerable(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut review) = value else {
        return Err(ParseError::Unanswerable(
            "request body is not a JSON object; expected an AdmissionReview".to_owned(),
        ));
    };
    let request = match review.remove("request") {
        Some(Value::Object(request)) => request,
        Some(_) => {
            return Err(ParseError::Unanswerable(
                "AdmissionReview.request is not an object".to_owned(),
            ))
        }
        None => {
            return Err(ParseError::Unanswerable(
                "AdmissionReview has no request".to_owned(),
            ))
        }
    };
    let uid = match string_field(&request, "uid") {
        Some(uid) if !uid.is_empty() => uid.to_owned(),
        _ => {
            return Err(ParseError::Unanswerable(
                "AdmissionReview.request.uid is missing or not a string".to_owned(),
            ))
        }
    };
    let invalid = |version, reason: String| ParseError::Invalid {
        version,
        uid: uid.clone(),
        reason,
    };
    let version = match string_field(&review, "apiVersion") {
        None | Some("admission.k8s.io/v1") => ReviewVersion::V1,
        Some("admission.k8s.io/v1beta1") => ReviewVersion::V1Beta1,
        Some(other) => {
            return Err(invalid(
                ReviewVersion::V1,
                format!(
                    "unsupported AdmissionReview apiVersion {other:?}; expected admission.k8s.io/v1"
                ),
            ))
        }
    };
    if let Some(kind) = review.get("kind") {
        if kind.as_str() != Some("AdmissionReview") {
            return Err(invalid(
                version,
                format!("unexpected kind {kind}; expected AdmissionReview"),
            ));
        }
    }
    let request: ReviewRequest = serde_json::from_value(Value::Object(request))
        .map_err(|e| invalid(version, format!("malformed AdmissionReview request: {e}")))?;
    Ok(ParsedReview { version, request })
}

/// `status` of a refusing response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResponseStatus {
    /// Always `Failure`.
    pub status: &'static str,
    /// Shown to the user.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason, e.g. `BadRequest`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    /// HTTP code the API server reports (403 for a policy denial).
    pub code: u16,
}

/// The `response` of an AdmissionReview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// Copied from the request.
    pub uid: String,
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Details of a refusal; absent when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Base64 of a JSON patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when `patch` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Warnings for the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// Admits the request.
    pub fn allow(uid: &str) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
        }
    }

    /// Refuses the request with a message, HTTP code and reason.
    pub fn refuse(uid: &str, message: String, code: u16, reason: &'static str) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: false,
            status: Some(ResponseStatus {
                status: "Failure",
                message,
                reason,
                code,
            }),
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
        }
    }

    /// Refuses a request that is not a valid AdmissionReview.
    pub fn invalid(uid: &str, reason: String) -> Self {
        Self::refuse(uid, reason, 400, "BadRequest")
    }

    /// Attaches a JSON patch (skipped when it has no operations).
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> Result<Self, serde_json::Error> {
        if patch.0.is_empty() {
            return Ok(self);
        }
        let bytes = serde_json::to_vec(patch)?;
        self.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        self.patch_type = Some("JSONPatch");
        Ok(self)
    }

    /// Adds warnings.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    /// Wraps the response in an AdmissionReview of the given version and serializes it.
    pub fn to_review_json(&self, version: ReviewVersion) -> Result<Vec<u8>, serde_json::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Envelope<'a> {
            api_version: &'static str,
            kind: &'static str,
            response: &'a AdmissionResponse,
        }
        serde_json::to_vec(&Envelope {
            api_version: version.api_version(),
            kind: "AdmissionReview",
            response: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(api_version: &str) -> Value {
        json!({
            "apiVersion": api_version,
            "kind": "AdmissionReview",
            "request": {
                "uid": "abc",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "default",
                "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
            }
        })
    }

    #[test]
    fn reads_v1_and_v1beta1() {
        let body = serde_json::to_vec(&review("admission.k8s.io/v1")).unwrap();
        let parsed = parse_review(&body).unwrap();
        assert_eq!(parsed.version, ReviewVersion::V1);
        assert_eq!(parsed.request.uid, "abc");
        assert_eq!(parsed.request.user_info.username, "alice");

        let body = serde_json::to_vec(&review("admission.k8s.io/v1beta1")).unwrap();
        assert_eq!(parse_review(&body).unwrap().version, ReviewVersion::V1Beta1);
    }

    #[test]
    fn unreadable_bodies_are_unanswerable_with_reasons() {
        let cases: [(&[u8], &str); 5] = [
            (b"{not json", "not valid JSON"),
            (b"[1,2]", "not a JSON object"),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\"}",
                "has no request",
            ),
            (b"{\"request\":{\"kind\":{}}}", "uid is missing"),
            (b"{\"request\":{\"uid\":7}}", "uid is missing"),
        ];
        for (body, expected) in cases {
            match parse_review(body) {
                Err(ParseError::Unanswerable(reason)) => {
                    assert!(
                        reason.contains(expected),
                        "{reason:?} should mention {expected:?}"
                    )
                }
                other => panic!("{}: unexpected {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn bad_fields_with_a_uid_are_answered_as_invalid() {
        let mut bad_operation = review("admission.k8s.io/v1");
        bad_operation["request"]["operation"] = json!("PATCH");
        let mut bad_version = review("admission.k8s.io/v2");
        bad_version["request"]["operation"] = json!("CREATE");
        let mut bad_kind = review("admission.k8s.io/v1");
        bad_kind["kind"] = json!("Pod");
        for (value, expected) in [
            (bad_operation, "unknown variant `PATCH`"),
            (bad_version, "unsupported AdmissionReview apiVersion"),
            (bad_kind, "expected AdmissionReview"),
        ] {
            match parse_review(&serde_json::to_vec(&value).unwrap()) {
                Err(ParseError::Invalid { uid, reason, .. }) => {
                    assert_eq!(uid, "abc");
                    assert!(
                        reason.contains(expected),
                        "{reason:?} should mention {expected:?}"
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn direct_decoding_answers_as_the_step_by_step_path() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        let mut push = |value: &Value| cases.push(serde_json::to_vec(value).unwrap());
        let valid = review("admission.k8s.io/v1");
        push(&valid);
        push(&review("admission.k8s.io/v1beta1"));
        push(&review("admission.k8s.io/v2"));
        for (pointer, replacement) in [
            ("/kind", Value::Null),
            ("/kind", json!("Pod")),
            ("/apiVersion", Value::Null),
            ("/apiVersion", json!(1)),
            ("/request", Value::Null),
            ("/request/uid", json!("")),
            ("/request/operation", json!("PATCH")),
            ("/request/object", Value::Null),
            ("/request/namespace", json!("")),
        ] {
            let mut changed = valid.clone();
            *changed.pointer_mut(pointer).unwrap() = replacement;
            push(&changed);
        }
        let mut without_kind = valid.clone();
        without_kind.as_object_mut().unwrap().remove("kind");
        push(&without_kind);
        let text = String::from_utf8(serde_json::to_vec(&valid).unwrap()).unwrap();
        // Duplicate fields: a generic document keeps the last one.
        cases.push(
            text.replacen("{", "{\"request\":{\"uid\":\"first\"},", 1)
                .into_bytes(),
        );
        cases.push(
            text.replacen("\"uid\":\"abc\"", "\"uid\":\"abc\",\"uid\":\"def\"", 1)
                .into_bytes(),
        );
        let duplicate_uid = cases.len() - 1;
        cases.push(format!("{text} trailing").into_bytes());
        // UTF-8 and escapes in strings; a byte that is not UTF-8.
        let unicode = text.replacen(
            "\"name\":\"p\"",
            "\"name\":\"p\",\"x\":\"café \\u00e9 \\ud83d\\ude00 ☃\"",
            1,
        );
        cases.push(unicode.clone().into_bytes());
        let mut not_utf8 = unicode.into_bytes();
        let at = not_utf8.iter().position(|b| *b == b'\xc3').unwrap();
        not_utf8[at] = 0xff;
        cases.push(not_utf8);
        for body in &cases {
            let direct = parse_review(body);
            let in_steps = parse_review_in_steps(body);
            let shown = String::from_utf8_lossy(body);
            match (direct, in_steps) {
                (Ok(direct), Ok(in_steps)) => {
                    assert_eq!(direct.version, in_steps.version, "{shown}");
                    assert_eq!(direct.request, in_steps.request, "{shown}");
                }
                (Err(direct), Err(in_steps)) => assert_eq!(direct, in_steps, "{shown}"),
                (direct, in_steps) => panic!("{shown}: {direct:?} but {in_steps:?}"),
            }
        }
        // The duplicate uid is read as the generic document reads it.
        let unicode = parse_review(cases[cases.len() - 2].as_slice()).unwrap();
        assert_eq!(
            unicode.request.object.unwrap()["metadata"]["x"],
            "café é \u{1f600} ☃",
            "strings decoded from UTF-8 text"
        );
        assert!(matches!(
            parse_review(cases[cases.len() - 1].as_slice()),
            Err(ParseError::Unanswerable(_))
        ));
        let last = parse_review(cases[duplicate_uid].as_slice()).unwrap();
        assert_eq!(last.request.uid, "def");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 10_000;
        let body = format!(
            "{{\"request\":{{\"uid\":\"x\",\"object\":{}{}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(matches!(
            parse_review(body.as_bytes()),
            Err(ParseError::Unanswerable(reason)) if reason.contains("recursion limit")
        ));
    }

    #[test]
    fn responses_use_the_wire_shape() {
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}
        ]))
        .unwrap();
        let response = AdmissionResponse::allow("abc")
            .with_patch(&patch)
            .unwrap()
            .with_warnings(vec!["careful".into()]);
        let value: Value =
            serde_json::from_slice(&response.to_review_json(ReviewVersion::V1Beta1).unwrap())
                .unwrap();
        assert_eq!(value["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(value["kind"], "AdmissionReview");
        assert_eq!(value["response"]["uid"], "abc");
        assert_eq!(value["response"]["allowed"], true);
        assert_eq!(value["response"]["patchType"], "JSONPatch");
        assert_eq!(value["response"]["warnings"], json!(["careful"]));
        assert!(value["response"].get("status").is_none());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value["response"]["patch"].as_str().unwrap())
            .unwrap();
        let decoded: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(decoded[0]["op"], "add");

        let denied = AdmissionResponse::refuse("abc", "no".into(), 403, "");
        let value: Value =
            serde_json::from_slice(&denied.to_review_json(ReviewVersion::V1).unwrap()).unwrap();
        assert_eq!(
            value["response"]["status"],
            json!({"status": "Failure", "message": "no", "code": 403})
        );
        // An empty patch adds nothing.
        let empty = AdmissionResponse::allow("abc")
            .with_patch(&json_patch::Patch(vec![]))
            .unwrap();
        assert_eq!(empty.patch, None);
        assert_eq!(empty.patch_type, None);
    }
}
