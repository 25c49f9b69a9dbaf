//! Values the semantic conventions fix, shared by every integration.

/// Duration buckets in seconds (the stable HTTP conventions' advice, used for
/// every `*.duration` histogram here; the SDK's defaults are for ms).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

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
