// Shared by the targets (included with `#[path]`): splitting one input into parts.

/// Splits the input at the first NUL byte: two independent parts (an expression and a
/// document, a pattern and a resource). Without a NUL the second part is empty.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// A JSON document from bytes, or YAML when it is not JSON; `None` when neither.
pub fn document(bytes: &[u8]) -> Option<serde_json::Value> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Some(value);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    bylaw_api::yaml::parse_documents(text, "fuzz")
        .ok()?
        .into_iter()
        .next()
}
