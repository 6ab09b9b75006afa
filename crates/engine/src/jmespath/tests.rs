//! Behaviour tests for the JMESPath dialect and its functions. The case table lives in
//! `testdata/cases.yaml`; expectations come from Kyverno's documentation and its own tests.

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::{json, Value};

use super::*;

/// A clock pinned to 2021-05-06T07:08:09Z (shown in a +02:00 local zone), a fixed random
/// seed and a two-entry resolver.
pub(crate) struct FixedEnv;

impl Env for FixedEnv {
    fn now(&self) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2021-05-06T09:08:09+02:00").unwrap()
    }

    fn random_u64(&self) -> u64 {
        42
    }
}

fn document() -> Value {
    json!({
        "request": {
            "operation": "CREATE",
            "object": {
                "metadata": {
                    "name": "nginx",
                    "namespace": "default",
                    "labels": {"app": "web", "env": "prod"},
                    "nullField": null
                },
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.25",
                            "securityContext": {"privileged": true},
                            "resources": {"limits": {"cpu": "500m"}}
                        },
                        {"name": "sidecar", "image": "busybox"}
                    ]
                }
            }
        },
        "numbers": [1, 2, 3, 4],
        "nested": [[1, 2], [3], 4],
        "people": [
            {"name": "al", "age": 40},
            {"name": "bo", "age": 20},
            {"name": "cy", "age": 60}
        ],
        "with-dash": "dash-key"
    })
}

#[derive(Debug, Deserialize)]
struct Case {
    expr: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    not_found: bool,
}

#[test]
fn case_table() {
    let cases: Vec<Case> =
        serde_yaml_ng::from_str(include_str!("testdata/cases.yaml")).expect("case table parses");
    assert!(cases.len() > 150, "case table unexpectedly small");
    let doc = document();
    let mut failures = Vec::new();
    for case in &cases {
        let data = case.data.as_ref().unwrap_or(&doc);
        let outcome = compile(&case.expr).and_then(|e| e.search_with_env(data, &FixedEnv));
        match (&case.error, outcome) {
            (None, Ok(got)) => {
                let want = case.result.clone().unwrap_or(Value::Null);
                if !value::json_equal(&got, &want) {
                    failures.push(format!("{}: got {got}, want {want}", case.expr));
                }
            }
            (None, Err(e)) => failures.push(format!("{}: unexpected error {e}", case.expr)),
            (Some(want), Ok(got)) => {
                failures.push(format!("{}: got {got}, want error {want:?}", case.expr))
            }
            (Some(want), Err(e)) => {
                if !e.to_string().contains(want.as_str()) {
                    failures.push(format!("{}: error {e:?} lacks {want:?}", case.expr));
                }
                if e.is_not_found() != case.not_found {
                    failures.push(format!(
                        "{}: is_not_found() = {}, want {}",
                        case.expr,
                        e.is_not_found(),
                        case.not_found
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn random_matches_its_pattern_and_follows_the_seed() {
    let doc = json!({});
    let expr = compile("random('[a-z]{3}-[0-9]{2,4}')").unwrap();
    let a = expr.search_with_env(&doc, &FixedEnv).unwrap();
    let b = expr.search_with_env(&doc, &FixedEnv).unwrap();
    assert_eq!(a, b, "a fixed seed gives the same string");
    let text = a.as_str().unwrap();
    let re = regex::Regex::new("^[a-z]{3}-[0-9]{2,4}$").unwrap();
    assert!(re.is_match(text), "{text}");
    assert!(search("random('')", &doc).is_err());
    let live = search("random('x[0-9]+')", &doc).unwrap();
    assert!(live.as_str().unwrap().starts_with('x'));
}

#[test]
fn compiled_expressions_are_shared_and_thread_safe() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Expression>();
    let a = compile("request.object.metadata.name").unwrap();
    let b = compile("request.object.metadata.name").unwrap();
    assert!(
        Arc::ptr_eq(&a.inner, &b.inner),
        "second compile reuses the cached one"
    );
    let doc = document();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let e = a.clone();
            let d = doc.clone();
            std::thread::spawn(move || e.search(&d).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), json!("nginx"));
    }
}

#[test]
fn oversized_and_deep_expressions_fail_cleanly() {
    let long = "a".repeat(MAX_EXPRESSION_LEN + 1);
    assert_eq!(compile(&long).unwrap_err().kind(), "limit");
    let deep = format!("{}a{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(compile(&deep).unwrap_err().kind(), "limit");
    let chain = vec!["a"; 3000].join(".");
    assert_eq!(compile(&chain).unwrap_err().kind(), "limit");
}

#[test]
fn deeply_nested_data_prints_without_overflow() {
    let mut v = json!(1);
    for _ in 0..2000 {
        v = Value::Array(vec![v]);
    }
    let err = compile("to_string(@)").unwrap().search(&v).unwrap_err();
    assert_eq!(err.kind(), "limit");
    drop_deep(v);
}

/// Dismantles a deep value iteratively (serde_json drops recursively).
fn drop_deep(mut v: Value) {
    while let Value::Array(mut items) = v {
        v = items.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn function_docs_cover_every_kyverno_function() {
    let docs = functions();
    let names: Vec<&str> = docs.iter().map(|d| d.name).collect();
    for name in [
        "compare",
        "equal_fold",
        "replace",
        "replace_all",
        "to_upper",
        "to_lower",
        "trim",
        "trim_prefix",
        "split",
        "regex_replace_all",
        "regex_replace_all_literal",
        "regex_match",
        "pattern_match",
        "label_match",
        "to_boolean",
        "add",
        "sum",
        "subtract",
        "multiply",
        "divide",
        "modulo",
        "round",
        "base64_decode",
        "base64_encode",
        "time_since",
        "time_now",
        "time_now_utc",
        "path_canonicalize",
        "truncate",
        "semver_compare",
        "parse_json",
        "parse_yaml",
        "lookup",
        "items",
        "object_from_lists",
        "random",
        "x509_decode",
        "time_to_cron",
        "time_add",
        "time_parse",
        "time_utc",
        "time_diff",
        "time_before",
        "time_after",
        "time_between",
        "time_truncate",
        "image_normalize",
        "is_external_url",
        "sha256",
        "sha1",
        "md5",
        "length",
        "sort_by",
        "not_null",
    ] {
        assert!(names.contains(&name), "{name} missing from functions()");
    }
    let truncate = docs.iter().find(|d| d.name == "truncate").unwrap();
    assert_eq!(truncate.signature, "truncate(string, number) string");
    assert!(truncate.kyverno);
    let merge = docs.iter().find(|d| d.name == "merge").unwrap();
    assert_eq!(merge.signature, "merge(object...) object");
    assert!(!merge.kyverno);
    assert!(docs.iter().all(|d| !d.description.is_empty()));
}

#[test]
fn time_now_accepts_extra_arguments_like_go_jmespath() {
    // Functions declared without parameters are not arity-checked by go-jmespath.
    let got = compile("time_now_utc('ignored')")
        .unwrap()
        .search_with_env(&json!({}), &FixedEnv)
        .unwrap();
    assert_eq!(got, json!("2021-05-06T07:08:09Z"));
}

#[test]
fn numbers_come_back_as_integers_when_integral() {
    let got = search("length(numbers)", &document()).unwrap();
    assert_eq!(got.to_string(), "4");
    let got = search("divide(`1`, `4`)", &json!({})).unwrap();
    assert_eq!(got.to_string(), "0.25");
}

#[test]
fn search_ref_borrows_parts_of_the_document_and_computes_the_rest() {
    use std::borrow::Cow;
    let doc = document();
    let containers = compile("request.object.spec.containers").unwrap();
    let found = containers.search_ref(&doc).unwrap();
    assert!(matches!(found, Cow::Borrowed(_)), "a path copies nothing");
    assert_eq!(
        found.as_ref(),
        &doc["request"]["object"]["spec"]["containers"]
    );
    let names = compile("request.object.spec.containers[].name").unwrap();
    assert_eq!(
        names.search_ref(&doc).unwrap().as_ref(),
        &json!(["app", "sidecar"])
    );
    let missing = compile("request.object.spec.missing").unwrap();
    assert!(missing.search_ref(&doc).unwrap_err().is_not_found());
}

#[test]
fn string_builders_refuse_results_over_the_limit_before_building_them() {
    let big = json!({"s": "x".repeat(1 << 20), "r": "y".repeat(64)});
    let kind = |expr: &str| compile(expr).unwrap().search(&big).unwrap_err().kind();
    // An empty `old` inserts `new` between every character: 1 MiB × 64 bytes.
    assert_eq!(kind("replace_all(s, '', r)"), "limit");
    assert_eq!(kind("replace(s, '', r, `-1`)"), "limit");
    // Each match expands to the whole input again.
    assert_eq!(
        kind("regex_replace_all('(x)', s, join('', [r, '$1']))"),
        "limit"
    );
    assert_eq!(kind("join('', [s, s, s, s, s, s, s, s, s])"), "limit");
    // Below the limit the same functions work.
    let ok = compile("length(replace_all(s, 'x', 'zz'))")
        .unwrap()
        .search(&big);
    assert_eq!(ok.unwrap(), json!(2 << 20));
    let ok = compile("length(regex_replace_all('x{1024}', s, '$0-'))")
        .unwrap()
        .search(&big);
    assert_eq!(ok.unwrap(), json!((1 << 20) + 1024));
}

#[test]
fn evaluation_work_and_depth_are_bounded() {
    // 64 copies per level, five levels: 2^30 elements.
    let copies = vec!["@"; 64].join(",");
    let mut expr = String::from("`[1]`");
    for _ in 0..5 {
        expr = format!("map(&[{copies}], {expr})[]");
    }
    let err = compile(&format!("length({expr})"))
        .unwrap()
        .search(&json!({}))
        .unwrap_err();
    assert_eq!(err.kind(), "limit", "{err}");
    // Copying the whole document many times counts as work too.
    let doc = json!({"items": vec![json!({"a": [1, 2, 3, 4, 5, 6, 7, 8]}); 20_000]});
    let many = vec!["items"; 200].join(",");
    let err = compile(&format!("length(to_string([{many}]))"))
        .unwrap()
        .search(&doc);
    assert_eq!(err.unwrap_err().kind(), "limit");
    // Nesting that compiles but would recurse too deep for a small stack.
    let mut deep = String::from("@");
    for _ in 0..(super::interp::MAX_EVAL_DEPTH + 1) {
        deep = format!("not_null({deep})");
    }
    let err = compile(&deep).unwrap().search(&json!(1)).unwrap_err();
    assert_eq!(err.kind(), "limit", "{err}");
    assert_eq!(
        compile("not_null(not_null(@))")
            .unwrap()
            .search(&json!(1))
            .unwrap(),
        json!(1)
    );
}

/// Names bound over a document read as if they had been inserted into a copy of it: a field
/// lookup, a projection from the root, `@` and `keys(@)` all see the same document.
#[test]
fn a_scope_reads_like_the_document_with_its_names_inserted() {
    let doc = json!({"request": {"operation": "CREATE"}, "element": "outer", "z": 1});
    let element = json!({"name": "app", "ports": [80, 443]});
    let index = json!(2);
    let bound = [("element", &element), ("elementIndex", &index)];
    let scope = Scope::new(&doc, &bound);
    let mut inserted = doc.clone();
    inserted["element"] = element.clone();
    inserted["elementIndex"] = index.clone();
    for expr in [
        "element.name",
        "element.ports[1]",
        "elementIndex",
        "request.operation",
        "@",
        "keys(@)",
        "[element.name, z]",
        "{n: element.name, i: elementIndex}",
        "length(element.ports) == `2` && elementIndex > `1`",
        "*",
        "element.ports[?@ > `100`]",
        "@.element.name",
    ] {
        let compiled = compile(expr).unwrap();
        assert_eq!(
            compiled.search_with_env(scope, &FixedEnv).unwrap(),
            compiled.search_with_env(&inserted, &FixedEnv).unwrap(),
            "{expr}"
        );
    }
    // A missing key stays Kyverno's "Unknown key" error with a scope as the root.
    let err = compile("missing.x")
        .unwrap()
        .search_with_env(scope, &FixedEnv)
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // `keys(@)` shows the bound name where the document had it (insertion keeps its place).
    assert_eq!(
        compile("keys(@)")
            .unwrap()
            .search_with_env(scope, &FixedEnv)
            .unwrap(),
        json!(["request", "element", "z", "elementIndex"])
    );
}

/// A foreach list built from parts of the document borrows its elements instead of copying
/// them; a list that is not an array is one element.
#[test]
fn foreach_elements_are_borrowed_from_the_document() {
    let doc = document();
    let expr = compile("request.object.spec.[initContainers, containers][]").unwrap();
    let elements = expr.search_elements(&doc, &FixedEnv).unwrap();
    let containers = doc["request"]["object"]["spec"]["containers"]
        .as_array()
        .unwrap();
    // No initContainers: the flatten leaves out its null.
    assert_eq!(elements.len(), containers.len(), "{elements:?}");
    for (element, container) in elements.iter().zip(containers) {
        assert!(
            matches!(element, Cow::Borrowed(e) if std::ptr::eq(*e, container)),
            "{element:?}"
        );
    }
    let single = compile("request.operation").unwrap();
    assert_eq!(
        single.search_elements(&doc, &FixedEnv).unwrap(),
        vec![Cow::<Value>::Owned(json!("CREATE"))]
    );
    let err = compile("request.nothing")
        .unwrap()
        .search_elements(&doc, &FixedEnv)
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// An expression that starts with `request.object`, searched where the object is bound over
/// the document's placeholder, answers as it does against the document holding the object:
/// values, elements, missing keys, errors, and the depth limit at the same length.
#[test]
fn request_object_searched_from_its_binding_answers_as_the_document_does() {
    let whole = document();
    let object = whole["request"]["object"].clone();
    let mut placeholders = whole.clone();
    placeholders["request"]["object"] = Value::Null;
    let objects = [("object", &object)];
    let bound = Scope::from(&placeholders).with_request(&objects);
    assert!(bound.bound_request_object().is_some());
    let text = |result: Result<Value, JmespathError>| format!("{result:?}");
    let mut exprs: Vec<String> = [
        "request.object",
        "request.object.metadata.name",
        "request.object.spec.containers[].image",
        "request.object.spec.[initContainers, containers][]",
        "request.object.spec.containers[?securityContext.privileged].name",
        "request.object.spec.containers[0].ports[*].containerPort",
        "request.object.metadata.labels.*",
        "request.object.metadata | keys(@)",
        "request.object.metadata.missing",
        "request.object.metadata.missing.deeper",
        "request.object.metadata.missing || 'default'",
        "request.object.spec.containers[].missing",
        "request.object.metadata.name.length(@)",
        "request.object.metadata.labels.app == 'web'",
        "request.operation",
        "request.objectx.metadata",
    ]
    .map(str::to_owned)
    .to_vec();
    // Around the evaluator's depth limit: both forms must fail from the same length on.
    for fields in super::interp::MAX_EVAL_DEPTH - 3..super::interp::MAX_EVAL_DEPTH + 3 {
        exprs.push(format!("request.object{}", ".metadata".repeat(fields)));
    }
    let mut limited = 0;
    for expr in &exprs {
        let compiled = compile(expr).unwrap();
        let want = compiled.search_with_env(&whole, &FixedEnv);
        limited += usize::from(matches!(&want, Err(e) if e.kind() == "limit"));
        assert_eq!(
            text(compiled.search_with_env(bound, &FixedEnv)),
            text(want),
            "{expr}"
        );
        assert_eq!(
            format!("{:?}", compiled.search_elements(bound, &FixedEnv)),
            format!("{:?}", compiled.search_elements(&whole, &FixedEnv)),
            "{expr}"
        );
    }
    assert!(
        limited > 0 && limited < 6,
        "the depth cases straddle the limit"
    );
}

/// Every expression of the shapes `simple` takes on answers there as the interpreter does —
/// values, nulls, "not found" errors with their key — over a plain document, names bound over
/// it, and `request` bindings; and what it hands back (a scope as the result, work near the
/// interpreter's first clock check) it does hand back.
#[test]
fn simple_shapes_answer_as_the_interpreter_does() {
    let whole = json!({
        "request": {"operation": "UPDATE", "object": null, "name": ""},
        "a": {
            "b": {"c": 1, "s": "text", "f": false, "e": [], "o": {}},
            "list": [[1, null, [2]], null, 3, "x", {"k": 1}, [], [null]],
            "flat": ["x", null, "y"],
            "strings": ["x", "y", {"k": 1}],
            "nulls": [null, [null]],
            "scalar": 7,
        },
        "big": (0..600).collect::<Vec<_>>(),
    });
    let object = json!({"spec": {"containers": [{"name": "c", "securityContext": {
        "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", null]}}}]}});
    let element = json!({"securityContext": {"capabilities": {"drop": ["ALL", "KILL"]}}});
    let objects = [("object", &object)];
    let elements = [("element", &element), ("a", &object)];
    let plain = Scope::from(&whole);
    let bound = Scope::from(&whole).with_bound(&elements);
    let with_request = Scope::from(&whole).with_request(&objects);
    let both = Scope::from(&whole)
        .with_bound(&elements)
        .with_request(&objects);

    let exprs = [
        "a",
        "a.b.c",
        "a.b.missing",
        "a.missing.deeper",
        "a.b.s.deeper",
        "a.scalar.x.y",
        "a.list[]",
        "a.flat[]",
        "a.nulls[]",
        "a.b[]",
        "a.b.e[]",
        "a.missing[]",
        "a.b.s[] || 'fallback'",
        "a.missing || 'x'",
        "a.b.f || a.b.e || a.b.o || a.b.s",
        "a.b.e || `[]`",
        "a.missing || a.other",
        "`{\"k\": [1]}` || a",
        "'lit'",
        "request.operation || 'BACKGROUND'",
        "request.name || 'none'",
        "request.object.spec.containers",
        "request.object.spec.containers[].name",
        "request.object.missing",
        "element.securityContext.capabilities.drop[] || `[]`",
        "element.securityContext.capabilities.add[] || `[]`",
        "element.missing",
        "a.spec",
        "request.object.spec.[initContainers, containers][]",
        "request.object.spec.[ephemeralContainers, initContainers, containers][].securityContext.capabilities.add[]",
        "request.object.spec.[missing, containers][].name",
        "a.[list, flat, b.c, missing.x][]",
        "a.[list, flat][][]",
        "a.list[][]",
        "a.list[].k",
        "a.list[][].k",
        "a.b.[c, s][]",
        "a.b.s.[x, y][]",
        "a.missing.[x][]",
        "request.[operation][]",
        "element.securityContext.[capabilities][].drop[]",
        "a.list[].k || 'none'",
        "a.strings[]",
        "a.strings[] || `[]`",
        "a.b.e[] || 'empty'",
    ];
    let text = |result: &Result<Cow<'_, Value>, JmespathError>| format!("{result:?}");
    let mut fast = 0;
    let mut from_object = 0;
    for expr in exprs {
        let compiled = compile_uncached(expr).unwrap();
        let shape = compiled.inner.simple.as_ref();
        for scope in [plain, bound, with_request, both] {
            let want = interp::evaluate_ref(compiled.ast(), scope, &FixedEnv);
            let got = shape.and_then(|shape| simple::evaluate_ref(shape, scope));
            if expr == "request.[operation][]" && !scope.request_bound.is_empty() {
                // `request` is a scope there: its fields are the interpreter's to list.
                assert!(got.is_none(), "{expr} over {scope:?}");
                continue;
            }
            let got = got.unwrap_or_else(|| panic!("{expr} is answered without the interpreter"));
            assert_eq!(text(&got), text(&want), "{expr} over {scope:?}");
            // As a foreach list: the same elements, borrowed alike.
            let shape = shape.unwrap();
            assert_eq!(
                format!("{:?}", simple::elements(shape, scope).unwrap()),
                format!(
                    "{:?}",
                    interp::evaluate_elements(compiled.ast(), scope, &FixedEnv)
                ),
                "{expr} as a list over {scope:?}"
            );
            fast += 1;
        }
        // A list searched from the request's object itself.
        if let Some(rest) = &compiled.inner.object_rest {
            let got = compiled.elements_from_request_object(&object, &FixedEnv);
            let want = interp::elements_of_rest_of_request_object(rest, &object, &FixedEnv);
            assert_eq!(format!("{got:?}"), format!("{:?}", Some(want)), "{expr}");
            assert!(simple::elements_of_request_object(shape.unwrap(), &object).is_some());
            from_object += 1;
        }
    }
    assert_eq!(from_object, 6);
    assert_eq!(fast, exprs.len() * 4 - 2);
    // A flatten that changes nothing answers with the document's own list: no copy.
    for (expr, scope) in [
        ("a.strings[]", plain),
        ("element.securityContext.capabilities.drop[] || `[]`", bound),
    ] {
        let compiled = compile_uncached(expr).unwrap();
        let found = simple::evaluate_ref(compiled.inner.simple.as_ref().unwrap(), scope);
        assert!(
            matches!(found, Some(Ok(Cow::Borrowed(Value::Array(_))))),
            "{expr}: {found:?}"
        );
    }
    for expr in [
        "a.list[*].k",
        "a.list[0]",
        "a.b.*",
        "a.[list, flat]",
        "a.list[?k].k",
        "a.b | c",
        "length(a.list)",
        "a.list[].[k]",
        "@",
        "a.b && a.c",
    ] {
        let compiled = compile_uncached(expr).unwrap();
        assert!(
            compiled.inner.simple.is_none(),
            "{expr} is left to the interpreter"
        );
    }

    // The deepest shape taken on is one the interpreter answers too, not one it finds too deep.
    let long_path = |root: &str| format!("{root}{}", ".f".repeat(15));
    let mut deepest = format!(
        "{}{}",
        long_path("a"),
        format!("[]{}", long_path("")).repeat(8)
    );
    for _ in 0..8 {
        deepest = format!("({deepest} || 'x')");
    }
    let compiled = compile_uncached(&deepest).unwrap();
    let shape = compiled
        .inner
        .simple
        .as_ref()
        .expect("the deepest simple shape");
    let want = interp::evaluate_ref(compiled.ast(), plain, &FixedEnv);
    assert!(want.is_ok(), "{want:?}");
    assert_eq!(
        text(&simple::evaluate_ref(shape, plain).unwrap()),
        text(&want)
    );
    // Handed back: `request` itself when names are bound over it, alone or through `||`, and
    // a flatten whose work nears the interpreter's first clock check.
    for (expr, scope) in [
        ("request", with_request),
        ("request || 'x'", both),
        ("big[]", plain),
    ] {
        let compiled = compile_uncached(expr).unwrap();
        let shape = compiled.inner.simple.as_ref().expect("a simple shape");
        assert!(simple::evaluate_ref(shape, scope).is_none(), "{expr}");
        // … and the public search still answers, through the interpreter.
        assert_eq!(
            format!("{:?}", compiled.search_with_env(scope, &FixedEnv)),
            format!(
                "{:?}",
                interp::evaluate_ref(compiled.ast(), scope, &FixedEnv).map(Cow::into_owned)
            ),
            "{expr}"
        );
    }
    // A short flatten of the same list is answered here.
    let short = compile_uncached("a.list[]").unwrap();
    assert!(simple::evaluate_ref(short.inner.simple.as_ref().unwrap(), plain).is_some());
}
