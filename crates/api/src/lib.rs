//! Kyverno-compatible API and wire types: `kyverno.io` policies and exceptions,
//! `policies.kyverno.io` CEL policies, `wgpolicyk8s.io`
//! reports, the `cli.kyverno.io` test inputs, CRD generation and YAML helpers.
//!
//! Depends only on serde, schemars, k8s-openapi and kube's derive; no I/O beyond (de)serialisation.

pub mod cli;
pub mod crd;
pub mod kyverno;
pub mod policies;
pub mod policyreport;
pub mod yaml;

pub use cli::{Test, UserInfo, Values};
pub use crd::{all_crds, crd_files, crds_yaml};
pub use kyverno::v1::{
    ClusterPolicy, EvaluationStatus, GenerateStatus, Policy, PolicySpec, PolicyStatus, Rule,
};
pub use kyverno::v2::PolicyException;
pub use policies::{NamespacedValidatingPolicy, ValidatingPolicy};
pub use policyreport::{ClusterPolicyReport, PolicyReport, PolicyResult};
pub use yaml::{from_value, parse_documents, to_yaml_string, DecodeError, YamlError};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Text is not valid YAML.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// A document does not have the shape of the requested type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl Error {
    /// Short, stable name of the error class (for metric labels and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Yaml(_) => "yaml",
            Error::Decode(_) => "decode",
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Implements [`kube::Resource`] for a root type with an `ObjectMeta` field named `metadata` and
/// `KIND`/`PLURAL` constants.
macro_rules! impl_resource {
    ($ty:ty, $group:expr, $version:expr, $plural:expr, $scope:ty) => {
        impl ::kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                <$ty>::KIND.into()
            }

            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                $group.into()
            }

            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                $version.into()
            }

            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                $plural.into()
            }

            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(
                &mut self,
            ) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

pub(crate) use impl_resource;
