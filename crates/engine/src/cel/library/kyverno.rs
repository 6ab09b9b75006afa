//! Kyverno's CEL libraries that work offline: image references (`image()`, `isImage()`),
//! service account names (`parseServiceAccount()`) and the clock (`time.now()`). The ones that
//! need the outside world (`resource.Get/List`, `globalContext.Get`, `image.GetMetadata`) are
//! answered by the context provider, see [`crate::cel::host`].

use std::collections::HashMap;

use cel::common::types::{CelMap, CelMapKey, CelString, CelTimestamp, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{arg, fail, library_type, ok_bool, ok_string, str_arg, type_of};

type Res<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

/// A parsed image reference, with Docker Hub defaults filled in as Kyverno's `image()` does.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

library_type!(ImageRef, IMAGE_TYPE, "kyverno.Image");

/// Parses an image reference: `[registry/]repository[:tag][@digest]`. A first segment with a
/// dot or a colon (or `localhost`) is the registry; otherwise it is Docker Hub
/// (`index.docker.io`, single names under `library/`). The tag defaults to `latest` when no
/// digest is given.
pub fn parse_image(text: &str) -> Result<ImageRef, String> {
    let invalid = || format!("could not parse reference: {text}");
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let (rest, digest) = match text.split_once('@') {
        Some((r, d)) => {
            let (algo, hex) = d.split_once(':').ok_or_else(invalid)?;
            if algo.is_empty() || hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            (r, d.to_owned())
        }
        None => (text, String::new()),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest.get(last_slash..).and_then(|tail| tail.rfind(':')) {
        Some(i) => {
            let split = last_slash + i;
            (
                rest.get(..split).unwrap_or(rest),
                rest.get(split + 1..).unwrap_or("").to_owned(),
            )
        }
        None => (rest, String::new()),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), path.to_owned())
        }
        _ => ("index.docker.io".to_owned(), name.to_owned()),
    };
    let repository = if registry == "index.docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let valid_component = |c: &str| {
        !c.is_empty()
            && c.chars().all(|ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
            })
    };
    if !repository.split('/').all(valid_component) {
        return Err(invalid());
    }
    let tag_ok = tag.is_empty()
        || (tag.len() <= 128
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if !tag_ok {
        return Err(invalid());
    }
    let tag = if tag.is_empty() && digest.is_empty() {
        "latest".to_owned()
    } else {
        tag
    };
    Ok(ImageRef {
        registry,
        repository,
        tag,
        digest,
    })
}

fn image<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let text = str_arg(&args, 0, "image")?;
    Ok(CowVal::owned(
        parse_image(text).map_err(|e| fail("image", e))?,
    ))
}

fn is_image<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(parse_image(str_arg(&args, 0, "isImage")?).is_ok())
}

fn image_of<'a>(args: &'a [CowVal<'_, '_>], f: &str) -> Result<&'a ImageRef, ExecutionError> {
    arg::<ImageRef>(args, 0, f)
}

fn image_registry<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(image_of(&args, "registry")?.registry.clone())
}

fn image_repository<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(image_of(&args, "repository")?.repository.clone())
}

fn image_identifier<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let i = image_of(&args, "identifier")?;
    ok_string(if i.digest.is_empty() {
        i.tag.clone()
    } else {
        i.digest.clone()
    })
}

fn image_tag<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(image_of(&args, "tag")?.tag.clone())
}

fn image_digest<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(image_of(&args, "digest")?.digest.clone())
}

fn image_contains_digest<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(!image_of(&args, "containsDigest")?.digest.is_empty())
}

/// `parseServiceAccount("system:serviceaccount:ns:name")` → `{Namespace: "ns", Name: "name"}`;
/// empty strings for any other user name.
fn parse_service_account<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let user = str_arg(&args, 0, "parseServiceAccount")?;
    let (namespace, name) = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .unwrap_or(("", ""));
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = [("Namespace", namespace), ("Name", name)]
        .into_iter()
        .map(|(k, v)| {
            (
                CelMapKey::from(k.to_owned()),
                Box::new(CelString::from(v.to_owned())) as Box<dyn Val + 'v>,
            )
        })
        .collect();
    Ok(CowVal::owned(CelMap::from(map)))
}

fn time_now<'b, 'v>(_args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    Ok(CowVal::owned(CelTimestamp::from(
        chrono::Utc::now().fixed_offset(),
    )))
}

/// Registers Kyverno's offline libraries.
pub fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let t = type_of::<ImageRef>();
    env.add_type(t.to_owned())?;
    env.add_overload("image", "string_to_image", vec![STRING_TYPE], image)?;
    env.add_overload("isImage", "is_image_string", vec![STRING_TYPE], is_image)?;
    for (name, f) in [
        (
            "registry",
            image_registry as cel::common::functions::Function,
        ),
        ("repository", image_repository),
        ("identifier", image_identifier),
        ("tag", image_tag),
        ("digest", image_digest),
        ("containsDigest", image_contains_digest),
    ] {
        env.add_member_overload(name, &format!("image.{name}()"), t.to_owned(), vec![], f)?;
    }
    env.add_overload(
        "parseServiceAccount",
        "parse_service_account_string",
        vec![STRING_TYPE],
        parse_service_account,
    )?;
    env.add_overload("time.now", "time_now", vec![], time_now)?;
    Ok(())
}

/// The text of a Kyverno library value.
pub fn display(value: &dyn Val) -> Option<String> {
    let i = value.downcast_ref::<ImageRef>()?;
    let mut text = format!("{}/{}", i.registry, i.repository);
    if !i.tag.is_empty() {
        text.push(':');
        text.push_str(&i.tag);
    }
    if !i.digest.is_empty() {
        text.push('@');
        text.push_str(&i.digest);
    }
    Some(text)
}
