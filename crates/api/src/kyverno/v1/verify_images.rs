//! `verifyImages` rules: image signature and attestation checks, and the attestor types shared
//! with manifest verification.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conditions::AnyAllConditions;
use super::context::ImageRegistryCredentials;
use super::validate::{Deny, FailureAction};

/// Signature format to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImageVerificationType {
    /// Sigstore cosign signatures (the default).
    Cosign,
    /// Sigstore bundles.
    SigstoreBundle,
    /// Notary v2 signatures.
    Notary,
}

/// Verification of the images whose reference matches `imageReferences`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerification {
    /// Signature format; cosign when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub verification_type: Option<ImageVerificationType>,

    /// Deprecated single image pattern; use `imageReferences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Image reference patterns (wildcards allowed); one must match for the rule to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_references: Option<Vec<String>>,

    /// Image reference patterns to skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_image_references: Option<Vec<String>>,

    /// Deprecated public key; use `attestors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,

    /// Deprecated keyless roots; use `attestors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots: Option<String>,

    /// Deprecated keyless subject; use `attestors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,

    /// Deprecated keyless issuer; use `attestors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,

    /// Deprecated keyless certificate extensions; use `attestors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_extensions: Option<BTreeMap<String, String>>,

    /// Required signers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestors: Option<Vec<AttestorSet>>,

    /// Required in-toto attestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestations: Option<Vec<Attestation>>,

    /// Deprecated signature annotations; use per-attestor annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Alternate OCI repository holding signatures and attestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,

    /// Use the OCI 1.1 referrers API (cosign).
    #[serde(
        default,
        rename = "cosignOCI11",
        skip_serializing_if = "Option::is_none"
    )]
    pub cosign_oci11: Option<bool>,

    /// Replace tags by digests in the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub mutate_digest: Option<bool>,

    /// Require images to be referenced by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub verify_digest: Option<bool>,

    /// Conditions across attestations and context entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateImageVerification>,

    /// Require every matching image to be verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub required: Option<bool>,

    /// Registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry_credentials: Option<ImageRegistryCredentials>,

    /// Cache verification results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub use_cache: Option<bool>,

    /// Whether a failed verification blocks the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
}

/// Signers of which `count` (all when absent) must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestorSet {
    /// How many entries must match; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<i64>,

    /// Candidate signers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<Attestor>>,
}

/// One signer: a key, a certificate, a keyless identity or a nested attestor set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestor {
    /// Public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<StaticKeyAttestor>,

    /// Certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificateAttestor>,

    /// Keyless (Fulcio) identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessAttestor>,

    /// Nested attestor set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestor: Option<Value>,

    /// Annotations the signature payload must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Alternate OCI repository for this signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,

    /// Signature digest algorithm: sha224, sha256 (default), sha384 or sha512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<String>,
}

/// Public-key signer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticKeyAttestor {
    /// PEM public keys, or `k8s://<namespace>/<secret>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_keys: Option<String>,

    /// Deprecated; use the attestor's `signatureAlgorithm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<String>,

    /// KMS key URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,

    /// Secret holding `cosign.pub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretReference>,

    /// Transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<Rekor>,

    /// Certificate transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<CtLog>,
}

/// Reference to a Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Secret name.
    pub name: String,
    /// Secret namespace.
    pub namespace: String,
}

/// Certificate signer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAttestor {
    /// PEM certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,

    /// PEM certificate chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_chain: Option<String>,

    /// Transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<Rekor>,

    /// Certificate transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<CtLog>,
}

/// Keyless signer identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeylessAttestor {
    /// Transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<Rekor>,

    /// Certificate transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<CtLog>,

    /// Certificate issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,

    /// Regular expression on the certificate issuer.
    #[serde(
        default,
        rename = "issuerRegExp",
        skip_serializing_if = "Option::is_none"
    )]
    pub issuer_reg_exp: Option<String>,

    /// Signer identity, e.g. an email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,

    /// Regular expression on the signer identity.
    #[serde(
        default,
        rename = "subjectRegExp",
        skip_serializing_if = "Option::is_none"
    )]
    pub subject_reg_exp: Option<String>,

    /// PEM trusted roots; system roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots: Option<String>,

    /// Required certificate extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_extensions: Option<BTreeMap<String, String>>,
}

/// Rekor transparency log settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rekor {
    /// Log URL; the public instance when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// PEM public key of a custom log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,

    /// Skip transparency log verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_tlog: Option<bool>,
}

/// Certificate transparency log settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CtLog {
    /// Skip the signed certificate timestamp check.
    #[serde(default, rename = "ignoreSCT", skip_serializing_if = "Option::is_none")]
    pub ignore_sct: Option<bool>,

    /// PEM public key used to verify timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,

    /// PEM certificate chain of an RFC 3161 timestamp authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_cert_chain: Option<String>,
}

/// A required in-toto attestation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// Name under which the attestation is available to conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Deprecated; use `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,

    /// Predicate type of the statement.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub attestation_type: Option<String>,

    /// Required signers of the attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestors: Option<Vec<AttestorSet>>,

    /// Conditions on the predicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<AnyAllConditions>>,
}

/// Checks across attestations and context entries of a verifyImages rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateImageVerification {
    /// Message reported on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Conditions that fail the rule when they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Deny>,
}
