//! Where policies and evaluation context come from.
//!
//! [`PolicySource`] yields the policy documents (ClusterPolicy, Policy, PolicyException) and
//! [`ContextSource`] answers what a policy may ask about the world (namespace labels,
//! ConfigMaps). Standalone mode reads both from files ([`FilePolicySource`],
//! [`FileContextSource`]); an in-cluster mode plugs in API-backed implementations of the same
//! traits without touching the cache or the evaluator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

pub use bylaw_engine::context::{ContextError, ContextProvider};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use serde_json::Value;

use crate::roles::{RoleIndex, UserRoles};

/// Label the API server puts on every namespace (Kubernetes ≥ 1.21); standalone mode adds it too.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// One policy document and where it came from (a file path, or `namespace/name` in a cluster).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyDocument {
    /// The document as JSON.
    pub value: Value,
    /// Where it was read from, for messages.
    pub origin: String,
}

/// Reading policies or context failed; the previous state stays in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A file or directory cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// A file is not valid YAML.
    #[error("{message}")]
    Parse {
        /// The file.
        path: String,
        /// `FILE:LINE:COL: reason`.
        message: String,
    },
    /// A file parses but does not have the expected shape.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, starting with the field path.
        reason: String,
    },
}

impl SourceError {
    /// The file the error is about, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            SourceError::Read { path, .. }
            | SourceError::Invalid { path, .. }
            | SourceError::Parse { path, .. } => Some(path),
        }
    }
}

/// Every policy document a source holds now, and the files it could not read: those are
/// reported and skipped, the other files' documents still load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyBatch {
    /// Documents read.
    pub documents: Vec<PolicyDocument>,
    /// Files that could not be read or parsed.
    pub unreadable: Vec<SourceError>,
}

/// Supplies the full set of policy documents.
pub trait PolicySource: Send + Sync + 'static {
    /// Short description for logs, e.g. the directories read.
    fn describe(&self) -> String;

    /// Every current document when anything may have changed since the last call, `Ok(None)`
    /// when nothing did. The first call always returns the documents. `Err` means the source
    /// as a whole cannot be listed (a directory is gone); one bad file is in
    /// [`PolicyBatch::unreadable`] instead. Changes are reported once: a broken file is not
    /// reported again until it changes.
    fn poll(&self) -> Result<Option<PolicyBatch>, SourceError>;
}

/// Supplies what policies look up outside the request: namespace labels, the requesting user's
/// roles and, through [`ContextProvider`], ConfigMaps and the rest. Must be cheap: it is called
/// per review.
pub trait ContextSource: ContextProvider + Send + Sync + 'static {
    /// Labels of a namespace, `None` when the namespace is unknown.
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>>;

    /// The Roles and ClusterRoles of a user for a request in `namespace` (`None` when
    /// cluster-scoped); nothing when bindings are unknown.
    fn user_roles(
        &self,
        _username: &str,
        _groups: &[String],
        _namespace: Option<&str>,
    ) -> UserRoles {
        UserRoles::default()
    }

    /// Re-reads the backing data if it changed; `Ok(true)` when something new is served.
    fn refresh(&self) -> Result<bool, SourceError> {
        Ok(false)
    }
}

/// A context with nothing in it: every namespace is unknown, no ConfigMap exists.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyContext;

impl ContextProvider for EmptyContext {}

impl ContextSource for EmptyContext {
    fn namespace_labels(&self, _namespace: &str) -> Option<BTreeMap<String, String>> {
        None
    }
}

/// Size, modification time and path of every file read, to notice changes without reading them.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(files: &[PathBuf]) -> Result<Fingerprint, SourceError> {
    files
        .iter()
        .map(|file| {
            let meta = std::fs::metadata(file).map_err(|e| read_error(file, &e))?;
            Ok((file.clone(), meta.len(), meta.modified().ok()))
        })
        .collect()
}

fn read_error(path: &Path, error: &std::io::Error) -> SourceError {
    SourceError::Read {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

/// Every `.yaml`, `.yml` and `.json` file of `root` (a file, or a directory walked recursively in
/// name order). Hidden directories are skipped: in a policy repository they hold test fixtures
/// (`.kyverno-test`), not policies. `bylaw serve --policies` and `bylaw apply` read files this
/// way, so both see the same policies.
pub fn collect_files(root: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    walk_files(root, Hidden::Skip, &is_manifest, out)
}

/// Whether a file name ends in `.yaml`, `.yml` or `.json`.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Whether a walk enters hidden (dot) directories and takes hidden files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    Skip,
    Include,
}

/// The one directory walker: the files below `root` that `accept` takes, in name order (`root`
/// itself when it is a file). Directories deeper than [`MAX_DIRECTORY_DEPTH`] are not entered.
pub fn walk_files(
    root: &Path,
    hidden: Hidden,
    accept: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> Result<(), SourceError> {
    walk_files_at(root, hidden, accept, out, 0)
}

/// Directories nested deeper than this are not walked (symlink loops, hostile trees).
pub const MAX_DIRECTORY_DEPTH: usize = 32;

fn walk_files_at(
    path: &Path,
    hidden: Hidden,
    accept: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<(), SourceError> {
    let meta = std::fs::metadata(path).map_err(|e| read_error(path, &e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if depth >= MAX_DIRECTORY_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| read_error(path, &e))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let is_hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if is_hidden && hidden == Hidden::Skip {
            continue;
        }
        if entry.is_dir() {
            walk_files_at(&entry, hidden, accept, out, depth + 1)?;
        } else if accept(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

fn read_yaml_documents(file: &Path) -> Result<Vec<Value>, SourceError> {
    let text = std::fs::read_to_string(file).map_err(|e| read_error(file, &e))?;
    let docs =
        bylaw_api::yaml::parse_documents(&text, &file.display().to_string()).map_err(|e| {
            SourceError::Parse {
                path: file.display().to_string(),
                message: e.to_string(),
            }
        })?;
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        // A `List` (as `kubectl get -o yaml` writes) stands for its items.
        match doc.get("items").and_then(Value::as_array) {
            Some(items) if doc.get("kind").and_then(Value::as_str) == Some("List") => {
                out.extend(items.iter().cloned());
            }
            _ => out.push(doc),
        }
    }
    Ok(out)
}

/// Polls files for changes (by size and modification time) and remembers what it last saw.
#[derive(Debug)]
struct FileWatch {
    roots: Vec<PathBuf>,
    last: Mutex<Option<Fingerprint>>,
}

impl FileWatch {
    fn new(roots: Vec<PathBuf>) -> Self {
        FileWatch {
            roots,
            last: Mutex::new(None),
        }
    }

    /// The files to read when they changed since the last call, `None` when unchanged.
    fn changed_files(&self) -> Result<Option<Vec<PathBuf>>, SourceError> {
        let mut files = Vec::new();
        for root in &self.roots {
            collect_files(root, &mut files)?;
        }
        let print = fingerprint(&files)?;
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_ref() == Some(&print) {
            return Ok(None);
        }
        // Remember it before reading: a broken file is then reported once, not every poll.
        *last = Some(print);
        Ok(Some(files))
    }
}

/// Policies read from YAML/JSON files and directories, re-read when a file's size or
/// modification time changes, or files appear or disappear.
#[derive(Debug)]
pub struct FilePolicySource {
    watch: FileWatch,
}

impl FilePolicySource {
    /// Reads policies from these files and directories.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        FilePolicySource {
            watch: FileWatch::new(roots),
        }
    }
}

impl PolicySource for FilePolicySource {
    fn describe(&self) -> String {
        self.watch
            .roots
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn poll(&self) -> Result<Option<PolicyBatch>, SourceError> {
        let Some(files) = self.watch.changed_files()? else {
            return Ok(None);
        };
        let mut batch = PolicyBatch::default();
        for file in files {
            let origin = file.display().to_string();
            match read_yaml_documents(&file) {
                Ok(values) => {
                    batch
                        .documents
                        .extend(values.into_iter().map(|value| PolicyDocument {
                            value,
                            origin: origin.clone(),
                        }))
                }
                Err(error) => batch.unreadable.push(error),
            }
        }
        Ok(Some(batch))
    }
}

/// Everything a [`FileContextSource`] serves.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ContextData {
    /// namespace → labels
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// (namespace, name) → ConfigMap object
    pub config_maps: BTreeMap<(String, String), Value>,
    /// RoleBindings, in file order.
    pub role_bindings: Vec<RoleBinding>,
    /// ClusterRoleBindings, in file order.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

/// Context read from files: a namespace-labels file (a YAML map `namespace: {label: value}`) and
/// Kubernetes manifests whose `Namespace` objects add labels, whose `ConfigMap` objects answer
/// `configMap` context entries and whose `RoleBinding` and `ClusterRoleBinding` objects give
/// requesting users their roles. Re-read when the files change.
#[derive(Debug)]
pub struct FileContextSource {
    labels_file: Option<PathBuf>,
    watch: FileWatch,
    data: RwLock<Arc<ContextData>>,
    roles: RwLock<Arc<RoleIndex>>,
}

impl FileContextSource {
    /// Reads the files once; fails when one is missing or malformed.
    pub fn load(
        labels_file: Option<PathBuf>,
        manifests: Vec<PathBuf>,
    ) -> Result<Self, SourceError> {
        let roots = labels_file.iter().cloned().chain(manifests).collect();
        let source = FileContextSource {
            labels_file,
            watch: FileWatch::new(roots),
            data: RwLock::new(Arc::new(ContextData::default())),
            roles: RwLock::new(Arc::new(RoleIndex::default())),
        };
        source.refresh()?;
        Ok(source)
    }

    /// What is served now.
    pub fn data(&self) -> Arc<ContextData> {
        self.data
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn read(&self, files: &[PathBuf]) -> Result<ContextData, SourceError> {
        let mut data = ContextData::default();
        for file in files {
            let docs = read_yaml_documents(file)?;
            if Some(file) == self.labels_file.as_ref() {
                for doc in &docs {
                    read_namespace_labels(file, doc, &mut data.namespaces)?;
                }
                continue;
            }
            for doc in docs {
                let meta = |field: &str| {
                    doc.pointer(&format!("/metadata/{field}"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                match doc.get("kind").and_then(Value::as_str) {
                    Some("Namespace") => {
                        let labels = bylaw_engine::request::metadata_map(&doc, "labels");
                        data.namespaces
                            .entry(meta("name"))
                            .or_default()
                            .extend(labels);
                    }
                    Some("ConfigMap") => {
                        let namespace = match meta("namespace") {
                            ns if ns.is_empty() => "default".to_owned(),
                            ns => ns,
                        };
                        data.config_maps.insert((namespace, meta("name")), doc);
                    }
                    Some("RoleBinding") => {
                        let mut binding: RoleBinding = typed(file, doc)?;
                        if binding
                            .metadata
                            .namespace
                            .as_deref()
                            .is_none_or(str::is_empty)
                        {
                            binding.metadata.namespace = Some("default".to_owned());
                        }
                        data.role_bindings.push(binding);
                    }
                    Some("ClusterRoleBinding") => {
                        data.cluster_role_bindings.push(typed(file, doc)?);
                    }
                    _ => {}
                }
            }
        }
        Ok(data)
    }
}

/// A manifest read as its Kubernetes type; a malformed one names the file and the field.
fn typed<T: serde::de::DeserializeOwned>(file: &Path, doc: Value) -> Result<T, SourceError> {
    serde_path_to_error::deserialize(doc).map_err(|e| SourceError::Invalid {
        path: file.display().to_string(),
        reason: format!("{}: {}", e.path(), e.inner()),
    })
}

fn read_namespace_labels(
    file: &Path,
    doc: &Value,
    into: &mut BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), SourceError> {
    let invalid = |reason: String| SourceError::Invalid {
        path: file.display().to_string(),
        reason,
    };
    let Some(namespaces) = doc.as_object() else {
        return Err(invalid(
            "expected a map of namespace → {label: value}".to_owned(),
        ));
    };
    for (namespace, labels) in namespaces {
        let entry = into.entry(namespace.clone()).or_default();
        match labels {
            Value::Null => {}
            Value::Object(labels) => {
                for (key, value) in labels {
                    let value = bylaw_engine::matching::scalar_string(value).ok_or_else(|| {
                        invalid(format!("{namespace}.{key}: a label value must be a string"))
                    })?;
                    entry.insert(key.clone(), value);
                }
            }
            _ => return Err(invalid(format!("{namespace}: expected a map of labels"))),
        }
    }
    Ok(())
}

impl ContextProvider for FileContextSource {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Value>, ContextError> {
        let data = self.data();
        match data
            .config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
        {
            Some(config_map) => Ok(Some(config_map.clone())),
            // Kyverno fails the rule when a referenced ConfigMap does not exist.
            None => Err(ContextError(format!(
                "configmap {namespace}/{name} not found"
            ))),
        }
    }
}

impl ContextSource for FileContextSource {
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.data
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .namespaces
            .get(namespace)
            .cloned()
    }

    fn user_roles(&self, username: &str, groups: &[String], namespace: Option<&str>) -> UserRoles {
        self.roles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .roles_of(username, groups, namespace)
    }

    fn refresh(&self) -> Result<bool, SourceError> {
        let Some(files) = self.watch.changed_files()? else {
            return Ok(false);
        };
        let data = self.read(&files)?;
        let mut current = self.data.write().unwrap_or_else(PoisonError::into_inner);
        if **current == data {
            return Ok(false);
        }
        let roles = RoleIndex::new(&data.role_bindings, &data.cluster_role_bindings);
        *self.roles.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(roles);
        *current = Arc::new(data);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn policy_files_are_read_in_order_skipping_hidden_dirs_and_other_extensions() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("b.yaml"), "kind: B\n---\nkind: C\n");
        write(&dir.path().join("a/a.yml"), "kind: A\n");
        write(
            &dir.path().join(".kyverno-test/resource.yaml"),
            "kind: Pod\n",
        );
        write(&dir.path().join("notes.txt"), "kind: Txt\n");
        write(
            &dir.path().join("list.json"),
            r#"{"kind": "List", "items": [{"kind": "D"}]}"#,
        );
        let source = FilePolicySource::new(vec![dir.path().to_owned()]);
        let docs = source.poll().unwrap().unwrap().documents;
        let kinds: Vec<&str> = docs
            .iter()
            .map(|d| d.value["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["A", "B", "C", "D"]);
        assert!(docs[0].origin.ends_with("a/a.yml"), "{}", docs[0].origin);

        // Unchanged files are not read again; a changed or new file is noticed.
        assert_eq!(source.poll().unwrap(), None);
        write(&dir.path().join("b.yaml"), "kind: B2\n");
        let docs = source.poll().unwrap().unwrap().documents;
        assert_eq!(docs.len(), 3);
        write(&dir.path().join("c.yaml"), "kind: E\n");
        assert_eq!(source.poll().unwrap().unwrap().documents.len(), 4);
        std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
        assert_eq!(source.poll().unwrap().unwrap().documents.len(), 3);
    }

    #[test]
    fn the_walker_takes_hidden_directories_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("b/kyverno-test.yaml"),
            "kind: Test
",
        );
        write(
            &dir.path().join(".kyverno-test/kyverno-test.yaml"),
            "kind: Test
",
        );
        write(
            &dir.path().join("a/other.yaml"),
            "kind: Test
",
        );
        let named = |p: &Path| p.file_name().and_then(|n| n.to_str()) == Some("kyverno-test.yaml");
        let relative = |files: Vec<PathBuf>| -> Vec<String> {
            files
                .iter()
                .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
                .collect()
        };
        let mut all = Vec::new();
        walk_files(dir.path(), Hidden::Include, &named, &mut all).unwrap();
        assert_eq!(
            relative(all),
            [".kyverno-test/kyverno-test.yaml", "b/kyverno-test.yaml"]
        );
        let mut visible = Vec::new();
        walk_files(dir.path(), Hidden::Skip, &named, &mut visible).unwrap();
        assert_eq!(relative(visible), ["b/kyverno-test.yaml"]);
    }

    #[test]
    fn broken_yaml_is_reported_once_with_its_location_and_other_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("p.yaml"), "kind: [unclosed\n");
        write(&dir.path().join("q.yaml"), "kind: Q\n");
        let source = FilePolicySource::new(vec![dir.path().to_owned()]);
        let batch = source.poll().unwrap().unwrap();
        assert_eq!(batch.documents.len(), 1);
        assert_eq!(batch.documents[0].value["kind"], "Q");
        let [err] = batch.unreadable.as_slice() else {
            panic!("one unreadable file expected: {:?}", batch.unreadable)
        };
        assert!(matches!(err, SourceError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("p.yaml:"), "{err}");
        assert!(err.path().unwrap().ends_with("p.yaml"), "{err:?}");
        assert_eq!(source.poll().unwrap(), None);

        let missing = FilePolicySource::new(vec![dir.path().join("nope")]);
        assert!(matches!(
            missing.poll().unwrap_err(),
            SourceError::Read { .. }
        ));
    }

    #[test]
    fn context_files_give_namespace_labels_and_config_maps() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("namespaces.yaml");
        write(&labels, "payments:\n  team: payments\n  tier: 1\nempty:\n");
        let manifests = dir.path().join("cluster.yaml");
        write(
            &manifests,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: search\n  labels: {team: search}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: registries\n  namespace: platform\ndata:\n  allowed: ghcr.io\n",
        );
        let bindings = dir.path().join("bindings.yaml");
        write(
            &bindings,
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: admins\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects:\n  - {kind: Group, name: platform}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: deployers\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}\nsubjects:\n  - {kind: User, name: alice}\n",
        );
        let source =
            FileContextSource::load(Some(labels.clone()), vec![manifests, bindings.clone()])
                .unwrap();
        let admin = source.user_roles("bob", &["platform".to_owned()], None);
        assert_eq!(admin.cluster_roles, ["cluster-admin"]);
        // A RoleBinding without a namespace is in `default`, as kubectl would create it.
        assert_eq!(
            source.user_roles("alice", &[], Some("x")).roles,
            ["default:deployer"]
        );
        assert_eq!(source.user_roles("carol", &[], None), UserRoles::default());
        let payments = source.namespace_labels("payments").unwrap();
        assert_eq!(payments["team"], "payments");
        assert_eq!(payments["tier"], "1");
        assert_eq!(source.namespace_labels("empty"), Some(BTreeMap::new()));
        assert_eq!(source.namespace_labels("search").unwrap()["team"], "search");
        assert_eq!(source.namespace_labels("unknown"), None);
        let cm = source
            .config_map("platform", "registries")
            .unwrap()
            .unwrap();
        assert_eq!(cm["data"], json!({"allowed": "ghcr.io"}));
        assert!(source.config_map("platform", "missing").is_err());

        assert!(!source.refresh().unwrap());
        write(&labels, "payments:\n  team: billing\n");
        assert!(source.refresh().unwrap());
        assert_eq!(
            source.namespace_labels("payments").unwrap()["team"],
            "billing"
        );

        // A malformed binding names its file and field; the previous data stays.
        write(
            &bindings,
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: admins\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: everyone\n",
        );
        let err = source.refresh().unwrap_err();
        assert!(err.to_string().contains("bindings.yaml: subjects"), "{err}");
        assert_eq!(
            source
                .user_roles("bob", &["platform".to_owned()], None)
                .cluster_roles,
            ["cluster-admin"]
        );

        // A malformed file is an error and the previous data stays.
        write(&labels, "- not a map\n");
        let err = source.refresh().unwrap_err();
        assert!(err.to_string().contains("namespaces.yaml"), "{err}");
        assert_eq!(
            source.namespace_labels("payments").unwrap()["team"],
            "billing"
        );
    }
}
