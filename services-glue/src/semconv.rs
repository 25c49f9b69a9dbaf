//! Values the semantic conventions fix, shared by every integration.

// Used for every `*.duration` histogram here; shared with `telemetry`
// through `telemetry-api`.
pub use telemetry_api::SECONDS_BUCKETS;

/// An HTTP method as the conventions want it: a registered method, or
/// `_OTHER`, so arbitrary client input never becomes a label value.
/// Methods are case-sensitive: `get` is not `GET`.
///
/// ```
/// use services_glue::semconv::normalize_method;
/// assert_eq!(normalize_method("GET"), "GET");
/// assert_eq!(normalize_method("PURGE"), "_OTHER");
/// ```
pub fn normalize_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
    }
}
