//! `[tls]`: every transport of the scenario over TLS, its version, resumption, and (for an
//! external target) whose certificate to trust.

use std::path::Path;

use super::Result;
use super::source::Section;
use super::transports::optional_bool;
use crate::plan::{TargetPlan, TlsCipher, TlsPlan, TlsVersion};

const TLS_FIELDS: &[&str] = &["version", "resumption", "cipher", "ca", "insecure"];

/// The URL schemes that speak TLS.
const TLS_SCHEMES: [&str; 3] = ["https://", "wss://", "mqtts://"];

/// `[tls]`, checked against the target: an embedded target trusts its own certificate, an
/// external one needs `ca` or `insecure`, and TLS URLs need `[tls]`.
pub(super) fn parse(root: &Section, target: &TargetPlan) -> Result<Option<TlsPlan>> {
    let external_tls_url = match target {
        TargetPlan::External { urls, .. } => urls
            .iter()
            .find(|u| TLS_SCHEMES.iter().any(|s| u.starts_with(s))),
        TargetPlan::Embedded => None,
    };
    let Some(item) = root.get("tls") else {
        return match (external_tls_url, root.get("target")) {
            (Some(url), Some(target)) => Err(target.error(format!(
                "{url:?} speaks TLS: add a [tls] section with ca = \"ca.pem\" (the server's CA \
                 certificate) or insecure = true"
            ))),
            _ => Ok(None),
        };
    };
    let section = item.table()?;
    section.reject_unknown(TLS_FIELDS)?;
    let version = match section.get("version") {
        Some(v) => v.choice(
            "TLS version",
            &[
                (TlsVersion::V1_3.name(), TlsVersion::V1_3),
                (TlsVersion::V1_2.name(), TlsVersion::V1_2),
            ],
        )?,
        None => TlsVersion::V1_3,
    };
    let ca = match section.get("ca") {
        Some(ca) => {
            let file = ca.string("the path of the server's CA certificate (PEM)")?;
            let scenario_dir = Path::new(section.src.path)
                .parent()
                .unwrap_or(Path::new(""));
            Some((ca, scenario_dir.join(file)))
        }
        None => None,
    };
    let insecure = optional_bool(&section, "insecure", false)?;
    let embedded = matches!(target, TargetPlan::Embedded);
    if let (true, Some((ca, _))) = (embedded, &ca) {
        return Err(ca.key_error(
            "`ca` names an external target's CA: the embedded target generates its own \
             certificate and its clients trust exactly that one",
        ));
    }
    if let (true, Some(flag)) = (embedded && insecure, section.get("insecure")) {
        return Err(flag.key_error(
            "`insecure` is for an external target: the embedded one's certificate is always \
             checked",
        ));
    }
    if !embedded && ca.is_none() && !insecure {
        return Err(section.missing(
            "ca",
            "an external TLS target needs ca = \"ca.pem\" (its CA certificate), or \
             insecure = true to skip the check; the system's trust store is never used",
        ));
    }
    Ok(Some(TlsPlan {
        version,
        resumption: optional_bool(&section, "resumption", true)?,
        ca: ca.map(|(_, path)| path),
        insecure,
        cipher: match section.get("cipher") {
            Some(c) => Some(c.choice(
                "cipher (the AEAD of the suites offered)",
                &TlsCipher::ALL.map(|c| (c.name(), c)),
            )?),
            None => None,
        },
    }))
}

/// Each `[[transports]]` entry's effective TLS: `tls = true` is `[tls]` (TLS 1.3 defaults
/// without it), `tls = false` is cleartext, no `tls` follows `[tls]`.
pub(super) fn per_transport(
    root: &Section,
    target: &TargetPlan,
    tls: Option<&TlsPlan>,
) -> Result<Vec<Option<TlsPlan>>> {
    let Some(item) = root.get("transports") else {
        return Ok(Vec::new());
    };
    let list = item.array("an array of tables, written as [[transports]] sections")?;
    list.iter()
        .enumerate()
        .map(|(i, value)| {
            let section = item.element(i, value).table()?;
            let Some(flag) = section.get("tls") else {
                return Ok(tls.cloned());
            };
            if !optional_bool(&section, "tls", false)? {
                return Ok(None);
            }
            match (tls, target) {
                (Some(tls), _) => Ok(Some(tls.clone())),
                (None, TargetPlan::Embedded) => Ok(Some(TlsPlan::default())),
                (None, TargetPlan::External { .. }) => Err(flag.error(
                    "tls = true on an external target needs a [tls] section with ca = \"ca.pem\" \
                     (the server's CA certificate) or insecure = true",
                )),
            }
        })
        .collect()
}
