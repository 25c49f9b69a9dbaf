//! Image references and their pinning: a tag other than `latest`, or a
//! digest, so the stack these checks passed is the stack that runs (the
//! Dockerfile's base images are held to the same rule).

use super::ComposeError;
use super::findings::{finding, finish};
use super::stack::Stack;

/// An image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Without registry host, tag or digest (`grafana/loki`).
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits `image` into its parts.
    pub fn parse(image: &str) -> ImageRef {
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (image, None),
        };
        let (name, tag) = match name.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (name, None),
        };
        let mut parts: Vec<&str> = name.split('/').collect();
        if parts.len() > 1
            && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
        {
            parts.remove(0);
        }
        ImageRef {
            repository: parts.join("/"),
            tag,
            digest,
        }
    }

    /// Why this reference is not pinned to one version, if it is not: no
    /// tag means `latest`, and `latest` moves.
    pub fn unpinned(&self) -> Option<&'static str> {
        if self.digest.is_some() {
            return None;
        }
        match self.tag.as_deref() {
            None => Some("has no tag, so it means `latest`"),
            Some("latest") => Some("is tagged `latest`, which moves"),
            Some(t) if t.contains('$') => Some("takes its tag from a variable"),
            Some(_) => None,
        }
    }
}

/// Every image names one version (a tag other than `latest`, or a
/// digest), so the stack that passed these checks is the stack that runs.
pub fn check_images_pinned(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services.values() {
        match &service.image {
            Some(image) => {
                if let Some(why) = ImageRef::parse(image).unpinned() {
                    findings.push(finding(
                        &stack.path,
                        format!(
                            "service {}: image {image} {why}; pin a version (image:1.2.3 or image@sha256:…)",
                            service.name
                        ),
                    ));
                }
            }
            None => findings.push(finding(
                &stack.path,
                format!(
                    "service {}: no image:; name the image with a version (for a built image too, e.g. deltran-fleet:0.1.0)",
                    service.name
                ),
            )),
        }
    }
    finish(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let r = ImageRef::parse("gcr.io/distroless/cc-debian12:nonroot");
        assert_eq!(r.repository, "distroless/cc-debian12");
        assert_eq!(r.tag.as_deref(), Some("nonroot"));
        assert!(ImageRef::parse("grafana/grafana").unpinned().is_some());
        assert!(
            ImageRef::parse("grafana/grafana:latest")
                .unpinned()
                .is_some()
        );
        assert!(ImageRef::parse("localhost:5000/x").unpinned().is_some());
        assert!(ImageRef::parse("localhost:5000/x:1").unpinned().is_none());
        assert!(ImageRef::parse("x@sha256:00").unpinned().is_none());
    }
}
