//! Temporary stand-in (replaced by the lenient decoder).
use crate::registry::ProxyInput;
/// Decodes a populate body.
pub fn decode_populate(body: &[u8]) -> Result<Vec<ProxyInput>, String> {
    let v: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(v.iter()
        .map(|p| ProxyInput {
            name: p["name"].as_str().unwrap_or_default().into(),
            listen: p["listen"].as_str().unwrap_or_default().into(),
            upstream: p["upstream"].as_str().unwrap_or_default().into(),
            enabled: p["enabled"].as_bool().unwrap_or(true),
        })
        .collect())
}
