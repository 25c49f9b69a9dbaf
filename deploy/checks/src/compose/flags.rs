//! Command-line flags as Go programs (Prometheus, Tempo, Loki, the
//! collector, NATS) accept them: one or two dashes, `=value` or the next
//! argument. Several services are configured only by flags, so their ports
//! and files are read from here.

/// Every value of `--name=value`, `-name=value`, `--name value` in `args`
/// (Go's flag package accepts one or two dashes).
pub(super) fn flags(args: &[String], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        if let Some(value) = stripped
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('='))
        {
            out.push(value.to_string());
        } else if stripped == name
            && let Some(value) = iter.peek()
            && !value.starts_with('-')
        {
            out.push((*value).clone());
            iter.next();
        }
    }
    out
}

/// The last value of `--name` in `args` (a later flag wins, as in Go).
pub(super) fn flag(args: &[String], name: &str) -> Option<String> {
    flags(args, name).pop()
}

/// Whether `name` (without dashes) is given, bare or `=true`.
pub(super) fn has_flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| {
        let a = a.trim_start_matches('-');
        a == name || a == format!("{name}=true")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_both_spellings() {
        let args: Vec<String> = ["-config.file=/a", "--web.listen-address", "0.0.0.0:1"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag(&args, "config.file").as_deref(), Some("/a"));
        assert_eq!(
            flag(&args, "web.listen-address").as_deref(),
            Some("0.0.0.0:1")
        );
    }
}
