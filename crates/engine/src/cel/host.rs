//! Library calls answered by the context provider: `resource.Get`, `resource.List`,
//! `globalContext.Get`, `image.GetMetadata` (and `http.*`, which stays off).
//!
//! The interpreter only calls functions through plain `fn` pointers, which cannot reach the
//! provider of the evaluation in progress. So compilation rewrites such calls into an index on
//! a variable bound per evaluation (`__bylaw_host[['resource.Get', …]]`, see
//! [`super::program`]), and this value answers the index by calling the provider.

use cel::common::traits::Indexer;
use cel::common::types::{CelList, CelString, Type, DYN_TYPE};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;
use serde_json::Value;

use crate::context::ContextProvider;

/// The value behind `__bylaw_host`.
pub struct Host<'v> {
    pub provider: &'v dyn ContextProvider,
}

impl std::fmt::Debug for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl Val for Host<'_> {
    fn get_type(&self) -> &Type {
        &DYN_TYPE
    }

    fn cel_type() -> &'static Type {
        &DYN_TYPE
    }

    fn as_indexer<'b, 'w>(&'b self) -> Option<&'b (dyn Indexer + 'w)>
    where
        Self: 'w,
    {
        Some(self)
    }

    fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w>
    where
        Self: 'w,
    {
        Box::new(Host {
            provider: self.provider,
        })
    }
}

impl Indexer for Host<'_> {
    fn get<'b, 'w>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'w>, ExecutionError>
    where
        Self: 'w,
    {
        let call = idx
            .downcast_ref::<CelList>()
            .ok_or_else(|| ExecutionError::function_error("host", "malformed call"))?;
        let mut parts = call.inner().iter();
        let name = parts
            .next()
            .and_then(|n| n.downcast_ref::<CelString>())
            .map(|n| n.inner().to_owned())
            .ok_or_else(|| ExecutionError::function_error("host", "malformed call"))?;
        let args: Vec<String> = parts
            .map(|a| {
                a.downcast_ref::<CelString>()
                    .map(|s| s.inner().to_owned())
                    .ok_or_else(|| {
                        ExecutionError::function_error(
                            &name,
                            format!("arguments must be strings, got {}", a.get_type().name()),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        let value = self.call(&name, &args)?;
        super::program::charge(1 + json_size(&value))?;
        Ok(CowVal::Owned(super::convert::to_owned_val(&value)))
    }

    fn steal<'w>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'w>, ExecutionError>
    where
        Self: 'w,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

fn json_size(value: &Value) -> u64 {
    match value {
        Value::Array(items) => items.iter().map(json_size).sum::<u64>() + 1,
        Value::Object(map) => map.values().map(json_size).sum::<u64>() + 1,
        Value::String(s) => 1 + s.len() as u64 / 8,
        _ => 1,
    }
}

impl Host<'_> {
    fn call(&self, name: &str, args: &[String]) -> Result<Value, ExecutionError> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(ExecutionError::invalid_argument_count(n, args.len()))
            }
        };
        let provider_error =
            |e: crate::context::ContextError| ExecutionError::function_error(name, e.to_string());
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
        match name {
            "resource.Get" => {
                arity(4)?;
                let kind = super::kinds::kind_of(arg(1));
                self.provider
                    .resource(arg(0), &kind, arg(2), arg(3))
                    .map_err(provider_error)?
                    .ok_or_else(|| {
                        ExecutionError::function_error(
                            name,
                            format!(
                                "{} {:?} not found in namespace {:?}",
                                arg(1),
                                arg(3),
                                arg(2)
                            ),
                        )
                    })
            }
            "resource.List" => {
                arity(3)?;
                let kind = super::kinds::kind_of(arg(1));
                let items = self
                    .provider
                    .list_resources(arg(0), &kind, arg(2), None)
                    .map_err(provider_error)?;
                let mut list = serde_json::Map::new();
                list.insert("items".into(), Value::Array(items));
                Ok(Value::Object(list))
            }
            "globalContext.Get" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(ExecutionError::invalid_argument_count(2, args.len()));
                }
                let data = self
                    .provider
                    .global_reference(arg(0))
                    .map_err(provider_error)?
                    .ok_or_else(|| {
                        ExecutionError::function_error(
                            name,
                            format!("global context entry {:?} not found", arg(0)),
                        )
                    })?;
                // A projection names a field of the entry's data.
                match arg(1) {
                    "" => Ok(data),
                    projection => Ok(data.get(projection).cloned().unwrap_or(Value::Null)),
                }
            }
            "image.GetMetadata" => {
                arity(1)?;
                self.provider
                    .image_data(arg(0))
                    .map_err(provider_error)?
                    .ok_or_else(|| {
                        ExecutionError::function_error(
                            name,
                            format!("no metadata available for image {:?}", arg(0)),
                        )
                    })
            }
            _ => Err(ExecutionError::function_error(
                name,
                "outbound HTTP calls are disabled",
            )),
        }
    }
}
