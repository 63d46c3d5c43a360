//! The versions a `LeaseCandidate` declares, checked as kube-apiserver
//! checks them: strict semantic versions (`MAJOR.MINOR.PATCH`, with an
//! optional `-pre-release` and `+build`), the binary version no older than
//! the emulation version.

use std::cmp::Ordering;

/// A parsed semantic version; build metadata is ignored, as in ordering.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Version<'a> {
    core: [u64; 3],
    pre: Option<&'a str>,
}

/// Parses `text` as a strict semantic version, or says why it is not one.
pub(crate) fn parse(text: &str) -> Result<Version<'_>, String> {
    let text = text
        .split_once('+')
        .map_or(text, |(version, _build)| version);
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) if !pre.is_empty() => (core, Some(pre)),
        Some(_) => return Err("an empty pre-release".to_owned()),
        None => (text, None),
    };
    let mut parts = [0_u64; 3];
    let mut count = 0;
    for (i, part) in core.split('.').enumerate() {
        if i >= 3 {
            return Err("more than three numbers".to_owned());
        }
        let leading_zero = part.len() > 1 && part.starts_with('0');
        if part.is_empty() || leading_zero || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{part:?} is not a number without leading zeros"));
        }
        parts[i] = part.parse().map_err(|_| format!("{part:?} is too large"))?;
        count = i + 1;
    }
    if count != 3 {
        return Err("not MAJOR.MINOR.PATCH".to_owned());
    }
    Ok(Version { core: parts, pre })
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // A pre-release comes before its release; pre-releases compare as
        // text (enough to tell binary from emulation versions apart).
        self.core
            .cmp(&other.core)
            .then(match (self.pre, other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_semantic_versions_only() {
        for good in ["1.31.0", "0.0.1", "1.33.0-alpha.1", "1.2.3+build.5"] {
            assert!(parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "1.31", "v1.31.0", "1.31.0.1", "01.2.3", "1.x.3", "1.2.3-",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pre_release_comes_before_its_release() {
        assert!(parse("1.31.0-rc.1").unwrap() < parse("1.31.0").unwrap());
        assert!(parse("1.30.9").unwrap() < parse("1.31.0").unwrap());
        assert_eq!(
            parse("1.31.0+a").unwrap().cmp(&parse("1.31.0+b").unwrap()),
            Ordering::Equal
        );
    }
}
