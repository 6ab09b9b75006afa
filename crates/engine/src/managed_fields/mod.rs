//! Whether a policy can read the admitted object's `metadata.managedFields`.
//!
//! The API server sends every object with its managedFields, often half of the object's
//! bytes, and decoding them is about a quarter of what an admission review costs bylaw. Almost
//! no policy looks at them. This decides once per policy, at compile time, whether it could:
//! conservatively, so that anything not understood counts as reading them. A policy set for
//! which the answer is no gives the same results whether the object it sees has its
//! managedFields or not, and the webhook then does not decode them.
//!
//! A rule can reach the object's fields through its patterns (keys name fields), through the
//! JMESPath of `{{ … }}` variables, context entries and foreach lists (`request.object…`), and
//! through rule kinds that hand the whole object on (mutate, generate, verifyImages, CEL). The
//! last ones always count as reading. For the others, an expression is followed from the
//! context document down its field accesses; it is clear when every value it can produce or
//! compare lies below a named field other than `metadata.managedFields` of the object.

use serde_json::Value;

use crate::compile::{CompiledRule, RuleBody, ValidateCheck};
use crate::jmespath::{self, Ast};
use crate::variables::variable_expressions;

/// What a value inside an expression can be, as far as the object's managedFields go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// The context document: the input of a `{{ … }}` expression.
    Context,
    /// `request`.
    Request,
    /// `request.object` or `request.oldObject`.
    Object,
    /// The object's `metadata`.
    Metadata,
    /// A value that cannot hold the object's managedFields.
    Clear,
}

/// The keys a rule may have for the analysis to understand it; any other means "reads".
const RULE_KEYS: &[&str] = &[
    "name",
    "match",
    "exclude",
    "context",
    "preconditions",
    "validate",
    "skipBackgroundRequests",
    "reportProperties",
];

/// The keys of `validate` the analysis understands.
const VALIDATE_KEYS: &[&str] = &[
    "message",
    "pattern",
    "anyPattern",
    "deny",
    "foreach",
    "podSecurity",
    "failureAction",
    "failureActionOverrides",
    "allowExistingViolations",
];

/// Whether evaluating `rule` could read `metadata.managedFields` of the request's objects.
pub fn rule_reads_managed_fields(rule: &CompiledRule) -> bool {
    let RuleBody::Validate(validate) = &rule.body else {
        return true;
    };
    if !check_is_understood(&validate.check) {
        return true;
    }
    let Some(source) = rule.source.as_object() else {
        return true;
    };
    if source.keys().any(|key| !RULE_KEYS.contains(&key.as_str())) {
        return true;
    }
    let Some(validate_source) = source.get("validate").and_then(Value::as_object) else {
        return true;
    };
    if validate_source
        .keys()
        .any(|key| !VALIDATE_KEYS.contains(&key.as_str()))
    {
        return true;
    }
    if patterns_read(validate_source) {
        return true;
    }
    document_reads_managed_fields(&rule.source)
}

/// Whether the patterns of a `validate` (or of one of its foreach entries, at any depth) could
/// look at the managedFields. Foreach patterns are read as if at the object's root too: with
/// `elementScope: false` they are.
fn patterns_read(validate: &serde_json::Map<String, Value>) -> bool {
    let any_pattern = validate
        .get("anyPattern")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    if validate
        .get("pattern")
        .into_iter()
        .chain(any_pattern)
        .any(|pattern| pattern_reads(pattern, Reach::Object))
    {
        return true;
    }
    validate
        .get("foreach")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|entry| entry.as_object().is_none_or(patterns_read))
}

/// Whether the variables, JMESPath fields and text of a document (a rule, an exception's
/// conditions) could read the objects' managedFields.
pub fn document_reads_managed_fields(doc: &Value) -> bool {
    match doc {
        Value::String(text) => text_reads(text),
        Value::Array(items) => items.iter().any(document_reads_managed_fields),
        Value::Object(map) => map.iter().any(|(key, value)| {
            text_reads(key)
                || match (key.as_str(), value) {
                    // Bare JMESPath: a context entry's `jmesPath`, a foreach `list`.
                    ("jmesPath" | "list", Value::String(expression)) => {
                        expression_reads(expression) || text_reads(expression)
                    }
                    _ => document_reads_managed_fields(value),
                }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Pattern kinds whose reading the analysis follows; CEL and checks bylaw does not evaluate
/// count as reading.
fn check_is_understood(check: &ValidateCheck) -> bool {
    match check {
        ValidateCheck::Pattern(_)
        | ValidateCheck::AnyPattern(_)
        | ValidateCheck::Deny(_)
        | ValidateCheck::PodSecurity(_) => true,
        ValidateCheck::Foreach(entries) => entries
            .iter()
            .all(|entry| check_is_understood(&entry.check)),
        ValidateCheck::Cel(_) | ValidateCheck::Unsupported(_) => false,
    }
}

/// A string of a rule: a mention of managedFields anywhere (a JSON patch path, a message),
/// a `$(…)` reference (relative paths reach anywhere), or a variable whose expression is not
/// clear.
fn text_reads(text: &str) -> bool {
    if text.contains("managedFields") || text.contains("$(") {
        return true;
    }
    if !text.contains("{{") {
        return false;
    }
    match variable_expressions(text) {
        // A `{{` the scan does not take as a variable of its own is the outer part of a
        // nested variable, whose expression is only known after the inner one is substituted.
        Some(expressions) => {
            expressions.len() != text.matches("{{").count()
                || expressions.iter().any(|e| expression_reads(e))
        }
        None => true,
    }
}

/// Whether a JMESPath expression evaluated on the context document could produce or compare
/// anything that holds the objects' managedFields. `@` alone is the value at a pattern's
/// position, not followed here. Expressions that do not parse (a nested variable spliced at
/// run time) count as reading.
fn expression_reads(expression: &str) -> bool {
    if expression == "@" {
        return true;
    }
    match jmespath::compile_uncached(expression) {
        Ok(compiled) => reach(compiled.ast(), Reach::Context) != Some(Reach::Clear),
        Err(_) => true,
    }
}

/// What `ast` evaluated on a value of reach `input` can produce; `None` when it could read
/// the managedFields on the way (compare them, pass them to a function, project over them).
fn reach(ast: &Ast, input: Reach) -> Option<Reach> {
    let clear =
        |ast: &Ast, input: Reach| (reach(ast, input)? == Reach::Clear).then_some(Reach::Clear);
    match ast {
        Ast::Identity => Some(input),
        Ast::Field(name) => field(input, name),
        Ast::Literal(_) => Some(Reach::Clear),
        // Indexing or slicing an object gives null, but only a clear value is let through.
        Ast::Index(_) | Ast::Slice(..) => (input == Reach::Clear).then_some(Reach::Clear),
        Ast::Subexpr(lhs, rhs) | Ast::IndexExpr(lhs, rhs) | Ast::Pipe(lhs, rhs) => {
            reach(rhs, reach(lhs, input)?)
        }
        Ast::Projection(lhs, rhs) | Ast::ValueProjection(lhs, rhs) => {
            clear(lhs, input)?;
            clear(rhs, Reach::Clear)
        }
        Ast::FilterProjection(lhs, condition, rhs) => {
            clear(lhs, input)?;
            clear(condition, Reach::Clear)?;
            clear(rhs, Reach::Clear)
        }
        Ast::Flatten(inner) | Ast::Not(inner) => clear(inner, input),
        Ast::Or(a, b) | Ast::And(a, b) | Ast::Compare(_, a, b) => {
            clear(a, input)?;
            clear(b, input)
        }
        Ast::MultiList(items) => {
            for item in items {
                clear(item, input)?;
            }
            Some(Reach::Clear)
        }
        Ast::MultiHash(entries) => {
            for (_, item) in entries {
                clear(item, input)?;
            }
            Some(Reach::Clear)
        }
        Ast::Function(_, arguments) => {
            for argument in arguments {
                clear(argument, input)?;
            }
            Some(Reach::Clear)
        }
        // Applied by a function to the elements of an argument, which is clear.
        Ast::Expref(inner) => clear(inner, Reach::Clear),
    }
}

fn field(input: Reach, name: &str) -> Option<Reach> {
    Some(match (input, name) {
        (Reach::Context, "request") => Reach::Request,
        (Reach::Request, "object" | "oldObject") => Reach::Object,
        (Reach::Object, "metadata") => Reach::Metadata,
        (Reach::Metadata, "managedFields") => return None,
        _ => Reach::Clear,
    })
}

/// Whether a validate pattern at the object's root (or its metadata) could look at the
/// managedFields: through a wildcard key, or by checking the whole metadata as one value.
fn pattern_reads(pattern: &Value, at: Reach) -> bool {
    let Value::Object(map) = pattern else {
        return true;
    };
    map.iter().any(|(key, value)| {
        let name = anchored_name(key);
        if name.contains(['*', '?']) {
            return true;
        }
        match (at, name) {
            (Reach::Object, "metadata") => pattern_reads(value, Reach::Metadata),
            (Reach::Metadata, "managedFields") => true,
            _ => false,
        }
    })
}

/// The field name inside an anchor such as `=(name)`, `^(name)` or `X(name)`.
fn anchored_name(key: &str) -> &str {
    match (key.find('('), key.strip_suffix(')')) {
        (Some(open), Some(body)) => body.get(open + 1..).unwrap_or(key),
        _ => key,
    }
}

#[cfg(test)]
mod tests;
