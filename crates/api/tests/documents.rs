//! Documents of kinds and features the conformance corpus does not contain (exceptions, reports,
//! namespaced policies, verifyImages, generate foreach, mutate targets, status) decode into the
//! typed API and encode back unchanged. The YAML follows Kyverno's documented field names.

use bylaw_api::kyverno::v1::{Conditions, FailureAction, Method, ValidationFailureAction};
use bylaw_api::{
    from_value, parse_documents, ClusterPolicy, Policy, PolicyException, PolicyReport,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn round_trip<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
    let documents = parse_documents(yaml, "inline.yaml").expect("valid YAML");
    assert_eq!(documents.len(), 1);
    let original = documents.into_iter().next().unwrap_or(Value::Null);
    let typed: T = from_value(original.clone()).unwrap_or_else(|e| panic!("decodes: {e}"));
    let encoded = serde_json::to_value(&typed).expect("encodes");
    assert_eq!(encoded, original, "document changed in a round trip");
    typed
}

#[test]
fn policy_exception() {
    let exception: PolicyException = round_trip(
        r#"
apiVersion: kyverno.io/v2
kind: PolicyException
metadata: {name: delta-exception, namespace: delta}
spec:
  background: false
  exceptions:
  - policyName: disallow-host-namespaces
    ruleNames: [host-namespaces, autogen-host-namespaces]
  match:
    any:
    - resources:
        kinds: [Pod, Deployment]
        namespaces: [delta]
        names: [important-tool*]
  conditions:
    any:
    - key: "{{ request.object.metadata.labels.app || '' }}"
      operator: Equals
      value: busybox
  podSecurity:
  - controlName: Capabilities
    images: [ghcr.io/example/*]
    restrictedField: spec.containers[*].securityContext.capabilities.add
    values: [NET_ADMIN]
"#,
    );
    assert_eq!(exception.spec.exceptions[0].rule_names.len(), 2);
    assert_eq!(exception.metadata.namespace.as_deref(), Some("delta"));
}

#[test]
fn namespaced_policy_with_mutate_targets_and_api_call() {
    let policy: Policy = round_trip(
        r#"
apiVersion: kyverno.io/v1
kind: Policy
metadata: {name: sync-secret, namespace: team-a}
spec:
  applyRules: One
  webhookConfiguration:
    failurePolicy: Ignore
    timeoutSeconds: 15
    matchConditions:
    - name: not-kube-system
      expression: "request.namespace != 'kube-system'"
  rules:
  - name: update-secret
    skipBackgroundRequests: false
    match:
      any:
      - resources:
          kinds: [Secret]
          operations: [CREATE, UPDATE]
          selector:
            matchLabels: {app: "*"}
    context:
    - name: count
      apiCall:
        urlPath: /api/v1/namespaces/{{ request.namespace }}/pods
        method: POST
        data:
        - key: limit
          value: 10
        jmesPath: items | length(@)
        default: 0
    - name: svc
      apiCall:
        service:
          url: https://svc.team-a:443/check
          caBundle: PEM
          headers: [{key: X-Token, value: abc}]
    - name: global
      globalReference: {name: deployments, jmesPath: "length(@)"}
    mutate:
      mutateExistingOnPolicyUpdate: true
      targets:
      - apiVersion: v1
        kind: Secret
        name: copy-*
        namespace: team-a
        preconditions:
          all:
          - key: "{{ target.metadata.name }}"
            operator: NotEquals
            value: ""
      patchStrategicMerge:
        data:
          +(key): "{{ request.object.data.key }}"
      foreach:
      - list: request.object.data
        order: Descending
        patchesJson6902: |-
          - op: add
            path: /metadata/labels/x
            value: y
        foreach:
        - list: element.items
          patchStrategicMerge: {metadata: {labels: {z: "1"}}}
"#,
    );
    let rule = &policy.spec.rules()[0];
    let call = rule.context.as_deref().unwrap_or_default()[0]
        .api_call
        .as_ref()
        .expect("apiCall");
    assert_eq!(call.method, Some(Method::Post));
    let nested = rule
        .mutate
        .as_ref()
        .and_then(|m| m.foreach.as_ref())
        .and_then(|f| f[0].foreach.as_ref());
    assert_eq!(nested.map(Vec::len), Some(1), "nested foreach is typed");
}

#[test]
fn cluster_policy_with_generate_verify_images_and_status() {
    let policy: ClusterPolicy = round_trip(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: everything}
spec:
  validationFailureAction: enforce
  validationFailureActionOverrides:
  - action: audit
    namespaces: [dev]
  background: true
  rules:
  - name: gen
    match:
      resources:
        kinds: [Namespace]
      subjects: [{kind: User, name: alice}]
      clusterRoles: [admin]
    exclude:
      all:
      - resources:
          namespaceSelector:
            matchExpressions: [{key: tier, operator: In, values: [system]}]
          annotations: {skip: "true"}
    preconditions:
    - key: "{{ request.operation }}"
      operator: AnyIn
      value: [CREATE, UPDATE]
    generate:
      generateExisting: true
      synchronize: true
      orphanDownstreamOnPolicyDelete: false
      foreach:
      - list: request.object.spec.items
        apiVersion: v1
        kind: ConfigMap
        name: "cm-{{ element.name }}"
        namespace: "{{ request.object.metadata.name }}"
        data: {data: {a: b}}
      cloneList:
        namespace: default
        kinds: [v1/Secret, v1/ConfigMap]
        selector: {matchLabels: {allowedToBeCloned: "true"}}
  - name: verify
    match:
      any:
      - resources: {kinds: [Pod]}
    imageExtractors:
      Task:
      - path: /spec/steps/*
        value: image
        name: steps
        key: name
        jmesPath: "trim_prefix(@, 'docker://')"
    verifyImages:
    - imageReferences: ["ghcr.io/example/*"]
      skipImageReferences: ["ghcr.io/example/skip*"]
      type: Cosign
      failureAction: Enforce
      mutateDigest: false
      verifyDigest: true
      required: true
      useCache: true
      cosignOCI11: true
      imageRegistryCredentials: {allowInsecureRegistry: false, providers: [default, github], secrets: [regcred]}
      attestors:
      - count: 1
        entries:
        - keys:
            publicKeys: k8s://kyverno/keys
            signatureAlgorithm: sha256
            rekor: {url: https://rekor.sigstore.dev, ignoreTlog: true}
            ctlog: {ignoreSCT: true, pubkey: PEM, tsaCertChain: PEM}
        - keyless:
            subject: "https://github.com/example/*"
            issuerRegExp: ".*"
            additionalExtensions: {githubWorkflowTrigger: push}
        - certificates: {cert: PEM, certChain: PEM}
          annotations: {env: prod}
          repository: ghcr.io/example/signatures
        - attestor: {entries: [{keys: {kms: "gcpkms://key"}}]}
      attestations:
      - type: https://example.com/provenance
        name: prov
        attestors: [{entries: [{keys: {secret: {name: cosign, namespace: kyverno}}}]}]
        conditions:
        - all:
          - key: "{{ builder.id }}"
            operator: Equals
            value: trusted
      validate:
        message: bad attestation
        deny:
          conditions:
            any:
            - key: "{{ prov.ok }}"
              operator: Equals
              value: false
  - name: validate
    match:
      any:
      - resources: {kinds: [Pod]}
    celPreconditions:
    - name: only-create
      expression: "request.operation == 'CREATE'"
    reportProperties: {team: platform}
    validate:
      failureAction: Audit
      allowExistingViolations: false
      failureActionOverrides:
      - action: Enforce
        namespaceSelector: {matchLabels: {env: prod}}
      cel:
        generate: true
        expressions:
        - expression: "object.spec.replicas <= 5"
          messageExpression: "'too many: ' + string(object.spec.replicas)"
          reason: Invalid
        paramKind: {apiVersion: v1, kind: ConfigMap}
        paramRef: {name: limits, parameterNotFoundAction: Deny}
        auditAnnotations: [{key: replicas, valueExpression: "string(object.spec.replicas)"}]
        variables: [{name: r, expression: object.spec.replicas}]
      podSecurity:
        level: baseline
        version: latest
      manifests:
        attestors: [{entries: [{keys: {publicKeys: PEM}}]}]
        ignoreFields:
        - objects: [{kind: Deployment, name: app}]
          fields: [spec.replicas]
        dryRun: {enable: true, namespace: kyverno}
      assert:
        object:
          spec:
            (replicas > `3`): false
status:
  ready: true
  conditions:
  - type: Ready
    status: "True"
    reason: Succeeded
    message: Ready
    lastTransitionTime: "2024-01-02T03:04:05Z"
  rulecount: {validate: 1, generate: 1, mutate: 0, verifyimages: 1}
  validatingadmissionpolicy: {generated: false, message: ""}
  autogen:
    rules:
    - name: autogen-validate
      match:
        any:
        - resources: {kinds: [Deployment]}
      validate:
        deny: {}
"#,
    );
    let spec = &policy.spec;
    assert!(spec
        .validation_failure_action
        .is_some_and(ValidationFailureAction::is_enforce));
    let rules = spec.rules();
    assert!(
        matches!(rules[0].preconditions, Some(Conditions::List(_))),
        "legacy list form kept"
    );
    assert_eq!(
        rules[2].validate.as_ref().and_then(|v| v.failure_action),
        Some(FailureAction::Audit)
    );
    assert_eq!(
        policy
            .status
            .and_then(|s| s.rule_count)
            .map(|c| c.verify_images),
        Some(1)
    );
}

#[test]
fn policy_report() {
    let report: PolicyReport = round_trip(
        r#"
apiVersion: wgpolicyk8s.io/v1alpha2
kind: PolicyReport
metadata: {name: 5d3f3e9a, namespace: default}
scope: {apiVersion: v1, kind: Pod, name: nginx, namespace: default, uid: 5d3f3e9a}
summary: {pass: 1, fail: 1, warn: 0, error: 0, skip: 2}
results:
- source: kyverno
  policy: require-labels
  rule: check-team
  category: Best Practices
  severity: medium
  timestamp: {seconds: 1700000000, nanos: 5}
  result: fail
  scored: true
  message: "validation error: label `team` is required"
  properties: {process: admission review}
  resources:
  - {apiVersion: v1, kind: Pod, name: nginx, namespace: default, uid: 5d3f3e9a}
"#,
    );
    assert_eq!(report.summary.map(|s| s.skip), Some(2));
    let results = report.results.unwrap_or_default();
    assert_eq!(results[0].result, Some(bylaw_api::PolicyResult::Fail));
}

#[test]
fn empty_lists_and_maps_stay_distinct_from_absent_ones() {
    let policy: ClusterPolicy = round_trip(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: empties}
spec:
  rules:
  - name: r
    context: []
    match:
      any: []
      all:
      - resources: {kinds: [], annotations: {}}
    validate:
      pattern: {}
"#,
    );
    let rule = &policy.spec.rules()[0];
    assert_eq!(rule.context.as_deref().map(<[_]>::len), Some(0));
    assert!(rule.exclude_resources.is_none());
}
