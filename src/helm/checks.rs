//! Checks of the chart input's fields: SemVer versions, label-safe app versions, image
//! repositories and digests, resource names and Kubernetes quantities. Each names the field
//! or service and never echoes an environment value.

use super::error::HelmError;
use super::input::ChartService;

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> HelmError {
    HelmError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

pub(super) fn invalid_service(service: &ChartService, reason: impl Into<String>) -> HelmError {
    HelmError::InvalidService {
        service: service.name.clone(),
        reason: reason.into(),
    }
}

/// A value that ends up in a YAML string and in messages: non-empty, one line.
pub(super) fn check_plain(field: &'static str, value: &str) -> Result<(), HelmError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(field, format!("`{value}` contains whitespace")));
    }
    Ok(())
}

/// SemVer 2: `MAJOR.MINOR.PATCH[-pre][+build]`, as Helm requires for `version`.
pub(super) fn check_semver(version: &str) -> Result<(), HelmError> {
    if is_semver(version) {
        Ok(())
    } else {
        Err(invalid(
            "chart_version",
            format!("`{version}` is not SemVer (like 0.1.0)"),
        ))
    }
}

/// Whether `version` is SemVer 2 (`MAJOR.MINOR.PATCH[-pre][+build]`), as Helm
/// requires for a chart's `version` (a Meshfile's `version` is checked with it).
pub fn is_semver(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |n: &&str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    if numbers.len() != 3 || !numbers.iter().all(numeric) {
        return false;
    }
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    if pre.is_some_and(|p| !ident(p)) || build.is_some_and(|b| !ident(b)) {
        return false;
    }
    true
}

/// appVersion is also a label value: ≤ 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub(super) fn check_app_version(version: &str) -> Result<(), HelmError> {
    let ok = !version.is_empty()
        && version.len() <= 63
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "app_version",
            format!(
                "`{version}` must be 1-63 letters, digits, `.`, `_` or `-` (a short session hash)"
            ),
        ))
    }
}

/// A resource name: `[prefix/]name` of letters, digits, `.`, `-`, `_`.
pub(super) fn check_resource_name(field: &'static str, name: &str) -> Result<(), HelmError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        && name.matches('/').count() <= 1;
    if ok {
        Ok(())
    } else {
        Err(invalid(field, format!("`{name}` is not a resource name")))
    }
}

/// A Kubernetes quantity: a decimal number with an optional SI/binary suffix or exponent.
pub(super) fn is_quantity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let digits_ok = number.chars().any(|c| c.is_ascii_digit()) && number.matches('.').count() <= 1;
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
        .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit()));
    digits_ok && suffix_ok
}

pub(super) fn check_repository(service: &ChartService) -> Result<(), HelmError> {
    let repo = &service.image_repository;
    let last = repo.rsplit('/').next().unwrap_or(repo);
    let ok = !repo.is_empty()
        && !repo.contains('@')
        && !last.contains(':')
        && !repo.starts_with('/')
        && !repo.ends_with('/')
        && repo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':'));
    if ok {
        Ok(())
    } else {
        Err(invalid_service(
            service,
            format!("image repository `{repo}` must be a repository without tag or digest"),
        ))
    }
}

pub(super) fn check_digest(service: &ChartService) -> Result<(), HelmError> {
    let digest = &service.image_digest;
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => is_lower_hex(hex, 64),
        Some(("sha512", hex)) => is_lower_hex(hex, 128),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid_service(
            service,
            format!("image digest `{digest}` is not `sha256:<64 hex digits>`"),
        ))
    }
}

fn is_lower_hex(hex: &str, len: usize) -> bool {
    hex.len() == len && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_accepts_helm_versions_only() {
        for good in ["0.1.0", "1.2.3-rc.1", "10.0.0+abc.1", "1.0.0-a-b+c"] {
            assert!(check_semver(good).is_ok(), "{good}");
        }
        for bad in ["1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0+", "a.b.c", ""] {
            assert!(check_semver(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        for good in ["1", "100m", "1.5Gi", "2e3", "128Mi", "0.5"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Mi", "1x", "1.2.3", "1 Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
