//! Tables for the CEL environment: the optional syntax, every library function against the
//! examples Kubernetes and Kyverno document, cost bounds and compile-time checks.

use serde_json::{json, Value};

use super::convert::{to_json, to_val};
use super::program::{Program, Scope};

const ROOTS: &[&str] = &["object", "oldObject", "request", "params", "variables"];

/// Evaluates `source` with `object` bound; the result as JSON, or the error text.
fn eval_with(source: &str, object: &Value) -> Result<Value, String> {
    let program = Program::compile(
        source,
        Scope {
            roots: ROOTS,
            variables: &[],
        },
    )?;
    let mut ctx = cel::Context::with_env(std::sync::Arc::clone(super::env()));
    ctx.add_variable_as_val("object", to_val(object));
    let value = program.evaluate(&ctx).map_err(|e| e.to_string())?;
    to_json(value.as_ref()).map_err(|e| e.to_string())
}

fn eval(source: &str) -> Result<Value, String> {
    eval_with(source, &Value::Null)
}

/// Asserts every `(expression, expected JSON)` row.
fn table(rows: &[(&str, Value)]) {
    for (source, want) in rows {
        match eval(source) {
            Ok(got) => assert_eq!(&got, want, "{source}"),
            Err(e) => panic!("{source}: {e}"),
        }
    }
}

/// Asserts every expression fails with an error containing the given text.
fn errors(rows: &[(&str, &str)]) {
    for (source, fragment) in rows {
        match eval(source) {
            Ok(got) => panic!("{source}: expected an error, got {got}"),
            Err(e) => assert!(e.contains(fragment), "{source}: {e}"),
        }
    }
}

#[test]
fn optional_syntax() {
    let pod = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]},
                     "metadata": {"labels": {"app": "web"}}});
    let rows = [
        ("object.spec.?initContainers.orValue([]).size()", json!(0)),
        ("object.spec.?containers.orValue([]).size()", json!(1)),
        ("object.spec.containers[?0].hasValue()", json!(true)),
        ("object.spec.containers[?3].hasValue()", json!(false)),
        ("object.metadata.?labels.?app.orValue('none')", json!("web")),
        (
            "object.?metadata.?annotations.?x.orValue('none')",
            json!("none"),
        ),
        ("object.metadata.labels[?'app'].value()", json!("web")),
        (
            "optional.of(1).value() + optional.none().orValue(2)",
            json!(3),
        ),
        ("optional.none().hasValue()", json!(false)),
        ("optional.ofNonZeroValue('').hasValue()", json!(false)),
        (
            "object.spec.?missing.or(optional.of('fallback')).value()",
            json!("fallback"),
        ),
        (
            "has(object.metadata.labels) && !has(object.metadata.annotations)",
            json!(true),
        ),
        (
            "object.spec.containers.all(c, c.?securityContext.?privileged.orValue(false) == false)",
            json!(true),
        ),
        ("[?optional.none(), ?optional.of(2)]", json!([2])),
        // Kyverno accepts `orValue` on a plain value and returns it.
        ("object.spec.containers.orValue([]).size()", json!(1)),
        ("object.metadata.labels.orValue({}).app", json!("web")),
        (
            "{?'a': optional.none(), ?'b': optional.of(1)}",
            json!({"b": 1}),
        ),
    ];
    for (source, want) in rows {
        assert_eq!(eval_with(source, &pod), Ok(want), "{source}");
    }
    assert!(eval_with("object.spec.missing", &pod)
        .unwrap_err()
        .contains("missing"));
}

#[test]
fn strings_library() {
    table(&[
        ("'hello'.charAt(1)", json!("e")),
        ("'hello'.charAt(5)", json!("")),
        ("'hello mellow'.indexOf('')", json!(0)),
        ("'hello mellow'.indexOf('ello')", json!(1)),
        ("'hello mellow'.indexOf('jello')", json!(-1)),
        ("'hello mellow'.indexOf('ello', 6)", json!(7)),
        ("'hello mellow'.lastIndexOf('ello')", json!(7)),
        ("'hello mellow'.lastIndexOf('ello', 6)", json!(1)),
        ("'TacoCat'.lowerAscii()", json!("tacocat")),
        ("'TacoCat'.upperAscii()", json!("TACOCAT")),
        ("'hello hello'.replace('he', 'we')", json!("wello wello")),
        ("'hello hello'.replace('he', 'we', 1)", json!("wello hello")),
        ("'hello hello'.split(' ')", json!(["hello", "hello"])),
        (
            "'hello hello hello'.split(' ', 2)",
            json!(["hello", "hello hello"]),
        ),
        ("'tacocat'.substring(4)", json!("cat")),
        ("'tacocat'.substring(0, 4)", json!("taco")),
        ("'  \\ttrim\\n    '.trim()", json!("trim")),
        ("['hello', 'mellow'].join()", json!("hellomellow")),
        ("['hello', 'mellow'].join(' ')", json!("hello mellow")),
        (
            "strings.quote('single-quote with \"double quote\"')",
            json!("\"single-quote with \\\"double quote\\\"\""),
        ),
        (
            "'%s is %d years'.format(['Ann', 30])",
            json!("Ann is 30 years"),
        ),
        (
            "'abc'.startsWith('a') && 'abc'.endsWith('c') && 'abc'.contains('b')",
            json!(true),
        ),
        ("'abc'.matches('^a.c$')", json!(true)),
        ("'gums'.reverse()", json!("smug")),
    ]);
    errors(&[
        ("'hello'.charAt(6)", "out of range"),
        ("'tacocat'.substring(40)", "out of range"),
    ]);
}

#[test]
fn regex_library() {
    table(&[
        ("'abc 123'.find('[0-9]+')", json!("123")),
        ("'abc 123'.find('xyz')", json!("")),
        ("'123 abc 456'.findAll('[0-9]+')", json!(["123", "456"])),
        ("'123 abc 456'.findAll('[0-9]+', 1)", json!(["123"])),
        ("'123 abc 456'.findAll('xyz')", json!([])),
    ]);
}

#[test]
fn lists_library() {
    table(&[
        ("[1, 2, 3].isSorted()", json!(true)),
        ("['a', 'c', 'b'].isSorted()", json!(false)),
        ("[1, 2, 3].sum()", json!(6)),
        ("[1.5, 2.5].sum()", json!(4.0)),
        ("[].sum()", json!(0)),
        ("[1, 2, 3].min()", json!(1)),
        ("['b', 'a', 'c'].max()", json!("c")),
        ("[1, 2, 2, 3].indexOf(2)", json!(1)),
        ("[1, 2, 2, 3].lastIndexOf(2)", json!(2)),
        ("[1, 2, 3].indexOf(4)", json!(-1)),
        ("sets.contains([1, 2, 3, 4], [2, 3])", json!(true)),
        ("sets.equivalent([1, 2, 3], [3, 2, 1])", json!(true)),
        ("sets.intersects([1], [1, 2])", json!(true)),
        ("sets.intersects([1], [2])", json!(false)),
    ]);
    errors(&[("[].min()", "empty list")]);
}

#[test]
fn quantity_library() {
    table(&[
        ("quantity('50M').isInteger()", json!(true)),
        ("quantity('50m').isInteger()", json!(false)),
        ("quantity('50M').asInteger()", json!(50_000_000)),
        ("quantity('50.5').asApproximateFloat()", json!(50.5)),
        ("quantity('-50M').sign()", json!(-1)),
        ("quantity('1Gi') == quantity('1024Mi')", json!(true)),
        (
            "quantity('200M').isGreaterThan(quantity('100M'))",
            json!(true),
        ),
        ("quantity('50M').isLessThan(quantity('100M'))", json!(true)),
        ("quantity('200M').compareTo(quantity('100M'))", json!(1)),
        (
            "quantity('50k').add(quantity('20k')) == quantity('70k')",
            json!(true),
        ),
        ("quantity('50k').add(20) == quantity('50020')", json!(true)),
        (
            "quantity('50k').sub(quantity('20k')) == quantity('30k')",
            json!(true),
        ),
        ("quantity('50k').sub(20) == quantity('49980')", json!(true)),
        ("isQuantity('1.3G')", json!(true)),
        ("isQuantity('1.3Gi')", json!(true)),
        ("isQuantity('1,3Gi')", json!(false)),
        ("quantity('1.5Gi')", json!("1536Mi")),
    ]);
    errors(&[
        ("quantity('1,3Gi')", "invalid quantity"),
        ("quantity('50m').asInteger()", "losslessly"),
    ]);
}

#[test]
fn ip_and_cidr_libraries() {
    table(&[
        ("isIP('127.0.0.1')", json!(true)),
        ("isIP('::1')", json!(true)),
        ("isIP('127.0.0.256')", json!(false)),
        ("isIP(':::1')", json!(false)),
        ("isIP('fe80::1%en0')", json!(false)),
        ("isIP('::ffff:127.0.0.1')", json!(false)),
        ("ip.isCanonical('127.0.0.1')", json!(true)),
        ("ip.isCanonical('2001:db8::abcd')", json!(true)),
        ("ip.isCanonical('2001:DB8::ABCD')", json!(false)),
        ("ip.isCanonical('2001:db8:0:0:0:0:0:abcd')", json!(false)),
        ("ip('127.0.0.1').family()", json!(4)),
        ("ip('::1').family()", json!(6)),
        ("ip('0.0.0.0').isUnspecified()", json!(true)),
        ("ip('127.0.0.1').isLoopback()", json!(true)),
        ("ip('224.0.0.1').isLinkLocalMulticast()", json!(true)),
        ("ip('224.0.1.1').isLinkLocalMulticast()", json!(false)),
        ("ip('169.254.169.254').isLinkLocalUnicast()", json!(true)),
        ("ip('fe80::1').isLinkLocalUnicast()", json!(true)),
        ("ip('192.168.0.1').isGlobalUnicast()", json!(true)),
        ("ip('255.255.255.255').isGlobalUnicast()", json!(false)),
        ("string(ip('127.0.0.1'))", json!("127.0.0.1")),
        ("isCIDR('192.168.0.0/16')", json!(true)),
        ("isCIDR('192.168.0.0/33')", json!(false)),
        (
            "cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))",
            json!(true),
        ),
        (
            "cidr('192.168.0.0/24').containsIP('192.168.1.1')",
            json!(false),
        ),
        (
            "cidr('192.168.0.0/16').containsCIDR(cidr('192.168.10.0/24'))",
            json!(true),
        ),
        (
            "cidr('192.168.0.0/24').containsCIDR('192.168.0.0/16')",
            json!(false),
        ),
        (
            "cidr('192.168.0.0/24').ip() == ip('192.168.0.0')",
            json!(true),
        ),
        (
            "cidr('192.168.1.5/24').masked() == cidr('192.168.1.0/24')",
            json!(true),
        ),
        ("cidr('192.168.0.0/16').prefixLength()", json!(16)),
        ("string(cidr('::1/128'))", json!("::1/128")),
    ]);
    errors(&[
        ("ip('::ffff:1.2.3.4')", "not allowed"),
        ("cidr('1.2.3.4')", "parse error"),
    ]);
}

#[test]
fn url_library() {
    table(&[
        (
            "url('https://example.com:80/').getHost()",
            json!("example.com:80"),
        ),
        (
            "url('https://example.com/').getHost()",
            json!("example.com"),
        ),
        ("url('https://[::1]:80/').getHost()", json!("[::1]:80")),
        (
            "url('https://example.com:80/').getHostname()",
            json!("example.com"),
        ),
        ("url('https://[::1]:80/').getHostname()", json!("::1")),
        ("url('https://example.com:80/').getPort()", json!("80")),
        ("url('https://example.com/').getPort()", json!("")),
        (
            "url('https://example.com/path').getScheme()",
            json!("https"),
        ),
        (
            "url('https://example.com/with space/').getEscapedPath()",
            json!("/with%20space/"),
        ),
        (
            "url('/absolute-path').getEscapedPath()",
            json!("/absolute-path"),
        ),
        (
            "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery()",
            json!({"k1": ["a"], "k2": ["b", "c"]}),
        ),
        ("isURL('https://example.com/')", json!(true)),
        ("isURL('/absolute-path')", json!(true)),
        ("isURL('relative-path')", json!(false)),
        ("isURL('')", json!(false)),
    ]);
}

#[test]
fn semver_library() {
    table(&[
        ("isSemver('1.0.0')", json!(true)),
        ("isSemver('v1.0')", json!(false)),
        ("isSemver('v1.0', true)", json!(true)),
        ("semver('1.2.3').major()", json!(1)),
        ("semver('1.2.3').minor()", json!(2)),
        ("semver('1.2.3').patch()", json!(3)),
        (
            "semver('1.2.3').isGreaterThan(semver('1.0.0'))",
            json!(true),
        ),
        ("semver('1.0.0').isLessThan(semver('1.2.3'))", json!(true)),
        ("semver('1.0.0').compareTo(semver('1.0.0'))", json!(0)),
        (
            "semver('1.0.0-alpha').isLessThan(semver('1.0.0'))",
            json!(true),
        ),
        ("semver('v01.01', true) == semver('1.1.0')", json!(true)),
    ]);
}

#[test]
fn kyverno_offline_libraries() {
    table(&[
        ("image('nginx').registry()", json!("index.docker.io")),
        ("image('nginx').repository()", json!("library/nginx")),
        ("image('nginx').tag()", json!("latest")),
        (
            "image('ghcr.io/kyverno/kyverno:v1.14').registry()",
            json!("ghcr.io"),
        ),
        (
            "image('ghcr.io/kyverno/kyverno:v1.14').repository()",
            json!("kyverno/kyverno"),
        ),
        (
            "image('ghcr.io/kyverno/kyverno:v1.14').identifier()",
            json!("v1.14"),
        ),
        (
            "image('localhost:5000/app@sha256:abcd').containsDigest()",
            json!(true),
        ),
        (
            "image('localhost:5000/app@sha256:abcd').digest()",
            json!("sha256:abcd"),
        ),
        ("isImage('nginx:1.27')", json!(true)),
        ("isImage('Not An Image')", json!(false)),
        (
            "parseServiceAccount('system:serviceaccount:ns:builder').Namespace",
            json!("ns"),
        ),
        (
            "parseServiceAccount('system:serviceaccount:ns:builder').Name",
            json!("builder"),
        ),
        ("parseServiceAccount('alice').Name", json!("")),
        (
            "time.now() > timestamp('2020-01-01T00:00:00Z')",
            json!(true),
        ),
    ]);
}

#[test]
fn standard_functions_follow_kubernetes_json_typing() {
    let object = json!({"replicas": 3, "ratio": 0.5, "name": "web"});
    for (source, want) in [
        ("object.replicas + 1", json!(4)),
        ("object.replicas > 2", json!(true)),
        ("object.ratio * 2.0", json!(1.0)),
        ("type(object.replicas) == int", json!(true)),
        ("duration('1h') > duration('30m')", json!(true)),
        ("string(object.replicas) + object.name", json!("3web")),
        ("dyn(object.replicas) == 3", json!(true)),
        ("int('42') + 1", json!(43)),
        ("base64.encode(b'hi')", json!("aGk=")),
        ("math.greatest(1, 5, 3)", json!(5)),
    ] {
        assert_eq!(eval_with(source, &object), Ok(want), "{source}");
    }
}

#[test]
fn hostile_expressions_end_with_an_error() {
    // A cubic comprehension over a 200-element list: 8 million steps.
    let big = json!((0..200).collect::<Vec<_>>());
    let err = eval_with(
        "object.all(a, object.all(b, object.all(c, a + b + c >= 0)))",
        &big,
    )
    .unwrap_err();
    assert!(err.contains("cost budget"), "{err}");
    // Doubling a string by repeated replacement.
    let err = eval(
        "'aaaaaaaaaaaaaaaa'.replace('', 'aaaaaaaaaaaaaaaa').replace('', 'aaaaaaaaaaaaaaaa').replace('', 'aaaaaaaaaaaaaaaa').replace('', 'aaaaaaaaaaaaaaaa').replace('', 'aaaaaaaaaaaaaaaa')",
    )
    .unwrap_err();
    assert!(err.contains("cost budget"), "{err}");
    // A modest expression stays within budget.
    assert_eq!(
        eval_with("object.all(a, object.exists(b, a == b))", &big),
        Ok(json!(true))
    );
}

#[test]
fn compile_errors_say_what_is_wrong() {
    let compile = |source: &str, variables: &[String]| {
        Program::compile(
            source,
            Scope {
                roots: ROOTS,
                variables,
            },
        )
        .map(|_| ())
    };
    assert!(compile("object.spec.(", &[])
        .unwrap_err()
        .contains("compilation failed"));
    assert!(compile("objct.spec", &[])
        .unwrap_err()
        .contains("undeclared reference to 'objct'"));
    assert!(compile("variables.later == 1", &["earlier".to_owned()])
        .unwrap_err()
        .contains("undeclared variable 'later'"));
    assert!(compile("'a'.matches('(')", &[])
        .unwrap_err()
        .contains("invalid regular expression"));
    assert!(compile(
        "object.all(x, x > 0) && variables.earlier",
        &["earlier".to_owned()]
    )
    .is_ok());
    assert!(compile("", &[]).is_err());
}
