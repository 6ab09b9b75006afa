//! Rule context entries: named variables filled from inline values, ConfigMaps, API calls,
//! image registries or global context entries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A named variable made available to the rule's JMESPath expressions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextEntry {
    /// Variable name.
    pub name: String,

    /// Inline value, optionally transformed by JMESPath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable: Option<Variable>,

    /// Data of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapReference>,

    /// Response of a Kubernetes API server call or an external JSON service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_call: Option<ApiCall>,

    /// Metadata of a container image fetched from its registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry: Option<ImageRegistry>,

    /// Cached value of a global context entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_reference: Option<GlobalContextEntryReference>,
}

/// An inline variable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    /// Any JSON value; may contain `{{ }}` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,

    /// JMESPath expression applied to `value` (or to the whole context when `value` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,

    /// Value used when the expression yields nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// Reference to a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapReference {
    /// ConfigMap name.
    pub name: String,

    /// ConfigMap namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// HTTP method of an API call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Method {
    /// HTTP GET (the default).
    #[serde(rename = "GET")]
    Get,
    /// HTTP POST with `data` as a JSON object body.
    #[serde(rename = "POST")]
    Post,
}

/// A call to the Kubernetes API server (`urlPath`) or to another JSON service (`service`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiCall {
    /// API server path, as used by `kubectl get --raw`, e.g. `/api/v1/namespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,

    /// HTTP method; GET when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "GET"))]
    pub method: Option<Method>,

    /// Body entries for POST requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<RequestData>>,

    /// External service to call instead of the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceCall>,

    /// JMESPath expression applied to the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,

    /// Value used when the call fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// One entry of a POST body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestData {
    /// Body key.
    pub key: String,

    /// Body value; any JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// An external JSON service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCall {
    /// Service URL, e.g. `https://svc.ns:443/path`.
    pub url: String,

    /// PEM CA bundle used to verify the service certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,

    /// Extra HTTP headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HttpHeader>>,
}

/// An HTTP header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

/// Image metadata lookup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistry {
    /// Image reference, e.g. `ghcr.io/org/app:1.0`.
    pub reference: String,

    /// JMESPath expression applied to the image data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,

    /// Credentials used to reach the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry_credentials: Option<ImageRegistryCredentials>,
}

/// Registry credential sources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistryCredentials {
    /// Allow plain-HTTP or self-signed registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_registry: Option<bool>,

    /// Cloud credential helpers to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<RegistryCredentialsProvider>>,

    /// Names of image pull secrets (in bylaw's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<String>>,
}

/// A registry credential helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistryCredentialsProvider {
    /// The default keychain.
    Default,
    /// Amazon ECR.
    Amazon,
    /// Azure ACR.
    Azure,
    /// Google GCR/Artifact Registry.
    Google,
    /// GitHub Container Registry.
    Github,
}

/// Reference to a global context entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalContextEntryReference {
    /// Name of the global context entry.
    pub name: String,

    /// JMESPath expression applied to the cached value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,
}
