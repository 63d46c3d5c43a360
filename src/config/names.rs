//! Kubernetes object names (DNS-1123).

/// A DNS-1123 subdomain, as Kubernetes requires for object names.
pub(crate) fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    name.split('.').try_for_each(|part| {
        label_chars(part).map_err(|e| {
            format!(
                "{e} (a lowercase RFC 1123 subdomain: labels of a-z, 0-9 and '-', separated by '.')"
            )
        })
    })
}

/// A DNS-1123 label, as Kubernetes requires for namespaces.
pub(crate) fn dns1123_label(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    label_chars(name).map_err(|e| format!("{e} (a lowercase RFC 1123 label: a-z, 0-9 and '-')"))
}

fn label_chars(label: &str) -> Result<(), String> {
    let bytes = label.as_bytes();
    if bytes.is_empty() {
        return Err("must not have an empty part".into());
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("contains {c:?}"));
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}
