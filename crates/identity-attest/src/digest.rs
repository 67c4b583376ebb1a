//! The digest of a request context, as an attestation states it.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::RequestContext;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `sha-256:` and the base64url SHA-256 of the context's wire form in canonical JSON (RFC 8785:
/// keys sorted, no spaces; fields that are absent or null left out; `requestedAt` as RFC 3339).
/// The caller's tokens are not part of it.
///
/// Anyone holding the context recomputes it: in Python,
/// `json.dumps(ctx, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` gives the same
/// bytes for a context of strings.
///
/// ```
/// use identity_core::{RequestContext, ResourceKind};
/// let ctx = RequestContext::builder().user_id("alice").resource_id("docs")
///     .resource_kind(ResourceKind::Shared).provider("openai").model("gpt-4o")
///     .action("read").trace_id("t1").build().unwrap();
/// let digest = identity_attest::context_digest(&ctx);
/// assert!(digest.starts_with("sha-256:"));
/// let other = RequestContext::builder().user_id("bob").resource_id("docs")
///     .resource_kind(ResourceKind::Shared).provider("openai").model("gpt-4o")
///     .action("read").trace_id("t1").build().unwrap();
/// assert_ne!(digest, identity_attest::context_digest(&other));
/// ```
pub fn context_digest(ctx: &RequestContext) -> String {
    let mut hasher = Sha256::new();
    hasher.update(canonical(ctx));
    format!("sha-256:{}", URL_SAFE_NO_PAD.encode(hasher.finalize()))
}

/// The canonical JSON of `ctx`'s wire form.
fn canonical(ctx: &RequestContext) -> Vec<u8> {
    // A BTreeMap whatever serde_json's map is built as: the order must not depend on a feature
    // another crate turns on.
    let fields: BTreeMap<String, Value> = match serde_json::to_value(ctx) {
        Ok(Value::Object(map)) => map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        _ => BTreeMap::new(),
    };
    serde_json::to_vec(&fields).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::ResourceKind;

    #[test]
    fn the_canonical_form_sorts_keys_and_leaves_out_what_is_absent() {
        let ctx = RequestContext::builder()
            .user_id("alice")
            .resource_id("docs")
            .resource_kind(ResourceKind::Shared)
            .provider("openai")
            .model("gpt-4o")
            .action("read")
            .trace_id("t1")
            .build()
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            String::from_utf8(canonical(&ctx)).unwrap_or_default(),
            r#"{"action":"read","model":"gpt-4o","provider":"openai","resourceId":"docs","resourceKind":"shared","traceId":"t1","userId":"alice"}"#
        );
    }
}
