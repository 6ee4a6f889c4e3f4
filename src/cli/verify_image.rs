//! `scone verify --image REF|oci:DIR`: an image checked on its own, with no
//! SGX hardware and no sources. Its enclave is recomputed from its layers
//! (`scone::verify::image`: the entry binary and `SCONE_*` settings the
//! image or its provenance names) and checked against its SIGSTRUCT (given,
//! or carried by its provenance), the provenance (given, or attached to the
//! image in its registry; its signature with `--key`), and with `--session`
//! a session that must list its MRENCLAVE and fspf tag.

use anyhow::Context;
use scone::attest::dsse::{Envelope, PAYLOAD_TYPE};
use scone::attest::key::PublicKey;
use scone::attest::provenance::Facts;
use scone::oci::base::{BaseContext, BaseSpec};
use scone::oci::digest::sha256_digest;
use scone::sgx::sigstruct::Sigstruct;
use scone::verify::image::{recompute, Hints, ImageEnclave};
use scone::verify::{session, Check, NONE};

use super::args::{EnclaveMode, VerifyArgs};
use super::UsageError;

/// A provenance envelope found for the image, and where.
struct Found {
    place: String,
    envelope: Envelope,
}

/// The checks of `image`.
pub fn checks(args: &VerifyArgs, image: &str) -> anyhow::Result<Vec<Check>> {
    let spec = BaseSpec::parse(image).map_err(|e| {
        UsageError::new(
            format!("--image `{image}`: {e}"),
            "give a registry reference, `oci:DIR[:TAG]` or `docker-daemon:NAME`",
        )
    })?;
    if matches!(spec, BaseSpec::Scratch | BaseSpec::Dir(_)) {
        return Err(UsageError::new(
            format!("--image `{image}` is no image"),
            "give a registry reference, `oci:DIR[:TAG]` or `docker-daemon:NAME`",
        )
        .into());
    }
    let offline = args.build.common.offline || args.build.common.frozen;
    let resolved = scone::oci::base::resolve(
        &spec,
        &BaseContext {
            cache_dir: super::build::cache_dir(),
            offline,
            pinned: None,
            insecure_registries: args.build.insecure_registries.clone(),
            docker_host: std::env::var("DOCKER_HOST").ok(),
        },
    )
    .map_err(|e| anyhow::anyhow!(e.about_image("the image to verify", image)))?;
    let digest = resolved.digest.clone();
    let mut checks = Vec::new();

    // The provenance: given, or attached in the registry.
    let mut found = Vec::new();
    if let Some(path) = &args.provenance {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        found.push(Found {
            place: path.display().to_string(),
            envelope: Envelope::parse(&bytes)?,
        });
    } else if let BaseSpec::Registry(reference) = &spec {
        let client = super::deployed::registry(&args.build.insecure_registries)?;
        let (referrers, _) = client.referrers(reference, &digest)?;
        for r in referrers.iter().filter(|r| r.artifact_type == PAYLOAD_TYPE) {
            let bytes = client.artifact_blob(reference, &r.digest)?;
            found.push(Found {
                place: format!("provenance referrer {}", scone::verify::short(&r.digest)),
                envelope: Envelope::parse(&bytes)?,
            });
        }
    }
    let key = match &args.key {
        Some(path) => Some(PublicKey::from_pem(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?),
        None => None,
    };
    let mut facts: Option<(Facts, String)> = None;
    for f in &found {
        if let Some(key) = &key {
            let verdict = f.envelope.verify(key);
            checks.push(Check::holds(
                image,
                "provenance signature",
                &f.place,
                format!("signed by key {}", key.keyid()),
                match &verdict {
                    Ok(()) => "signed by it".to_string(),
                    Err(e) => e.to_string(),
                },
                verdict.is_ok(),
                || {
                    "the provenance was changed after it was signed, or another key signed it"
                        .to_string()
                },
            ));
            if verdict.is_err() {
                continue;
            }
        }
        let parsed = Facts::parse(&f.envelope.payload()?)?;
        checks.push(Check::compare(
            image,
            "provenance subject",
            &f.place,
            &digest,
            Some(&parsed.subject.1),
            || "the provenance is of another image".to_string(),
        ));
        if facts.is_none() && parsed.subject.1 == digest {
            facts = Some((parsed, f.place.clone()));
        }
    }

    // The SIGSTRUCT: given, or the provenance's.
    let sigstruct = match &args.sigstruct {
        Some(path) => Some((
            // A SIGSTRUCT is 1808 bytes: a FIFO or a device is never opened, a
            // big file never read whole.
            scone::regular_file::read(path, 1808)
                .map_err(|e| anyhow::anyhow!("reading the SIGSTRUCT {}: {e}", path.display()))?,
            path.display().to_string(),
        )),
        None => facts
            .as_ref()
            .and_then(|(f, place)| Some((f.sigstruct.clone()?, format!("{place} (SIGSTRUCT)")))),
    };
    let parsed_sig = match &sigstruct {
        Some((bytes, place)) => Some((
            Sigstruct::from_bytes(bytes).with_context(|| format!("{place} is no SIGSTRUCT"))?,
            place.clone(),
        )),
        None => None,
    };
    let debug = match (&parsed_sig, &facts, args.build.mode) {
        (Some((s, _)), _, _) => s.is_debug(),
        (None, Some((f, _)), _) if f.debug.is_some() => f.debug.unwrap_or(true),
        (None, _, Some(EnclaveMode::Production)) => false,
        _ => true,
    };
    let hints = Hints {
        binary: args
            .binary
            .clone()
            .or_else(|| facts.as_ref().and_then(|(f, _)| f.binary.clone())),
        enclave_env: facts
            .as_ref()
            .filter(|(f, _)| f.binary.is_some())
            .map(|(f, _)| f.enclave_env.clone()),
    };
    let layers = resolved.layer_paths();
    let enclave = recompute(&resolved.config, &layers, &hints, debug)
        .map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
    let mode = if debug { "debug" } else { "production" };
    checks.insert(
        0,
        Check::holds(
            image,
            "MRENCLAVE",
            format!(
                "recomputed from the image ({} in {mode} mode)",
                enclave.binary
            ),
            &enclave.mrenclave,
            &enclave.mrenclave,
            true,
            String::new,
        ),
    );
    match &parsed_sig {
        None => checks.push(Check::holds(
            image,
            "SIGSTRUCT",
            "(none found)",
            &enclave.mrenclave,
            NONE,
            false,
            || {
                "no SIGSTRUCT to check: give --sigstruct FILE or --provenance FILE, or push the \
                 image with `scone apply --push`, which attaches its provenance (and with it the \
                 SIGSTRUCT)"
                    .to_string()
            },
        )),
        Some((s, place)) => {
            checks.push(Check::compare(
                image,
                "MRENCLAVE",
                format!("{place} ENCLAVEHASH"),
                &enclave.mrenclave,
                Some(&hex::encode(s.enclavehash())),
                || {
                    "the SIGSTRUCT is for another enclave: the image's entry binary or enclave \
                     settings differ from the ones it was signed for"
                        .to_string()
                },
            ));
            let valid = s.verify().is_valid();
            checks.push(Check::holds(
                image,
                "SIGSTRUCT signature",
                place,
                "valid",
                if valid { "valid" } else { "invalid" },
                valid,
                || {
                    "the SIGSTRUCT was changed after it was signed: its RSA signature does not \
                     verify"
                        .to_string()
                },
            ));
            if let Some((f, fplace)) = &facts {
                checks.push(Check::compare(
                    image,
                    "MRSIGNER",
                    fplace,
                    hex::encode(s.mrsigner()),
                    f.mrsigner.as_deref(),
                    || "the SIGSTRUCT is signed with another key than the provenance says".into(),
                ));
            }
        }
    }
    if let Some((f, place)) = &facts {
        checks.push(Check::compare(
            image,
            "MRENCLAVE",
            place,
            &enclave.mrenclave,
            f.mrenclave.as_deref(),
            || "the provenance names another enclave than the image makes".to_string(),
        ));
        checks.push(Check::compare(
            image,
            "fspf tag",
            place,
            &enclave.fspf_tag,
            f.fspf_tag.as_deref(),
            || "the image's files are not the ones the provenance names".to_string(),
        ));
        if let (Some((bytes, sig_place)), Some(theirs)) = (&sigstruct, &f.sigstruct) {
            if args.sigstruct.is_some() {
                checks.push(Check::compare(
                    image,
                    "SIGSTRUCT",
                    sig_place,
                    sha256_digest(theirs),
                    Some(&sha256_digest(bytes)),
                    || "the SIGSTRUCT given is not the one the provenance carries".to_string(),
                ));
            }
        }
    }
    if let Some(which) = &args.session {
        checks.extend(session_checks(image, which, &enclave)?);
    }
    Ok(checks)
}

/// The session's entry for the image `enclave` was recomputed from. Services
/// of one runtime share its MRENCLAVE (every python service has the
/// interpreter's): the image's own is the one its label names (the build's
/// name: the mesh may name the service otherwise), else one with its fspf tag
/// (CAS would accept the image as that service), else the first with its
/// MRENCLAVE; `None` if none has it.
fn entry_for<'s>(
    services: &'s [session::SessionService],
    enclave: &ImageEnclave,
) -> Option<&'s session::SessionService> {
    let mut with_mrenclave = services
        .iter()
        .filter(|s| s.mrenclaves.contains(&enclave.mrenclave));
    let labelled = |s: &&session::SessionService| enclave.service.as_deref() == Some(&s.name);
    let tagged = |s: &&session::SessionService| s.fspf_tag.as_deref() == Some(&enclave.fspf_tag);
    with_mrenclave
        .clone()
        .find(labelled)
        .or_else(|| with_mrenclave.clone().find(tagged))
        .or_else(|| with_mrenclave.next())
}

/// A session that must list the image: a file, `cas:NAME` or `cas://HOST/NAME`.
fn session_checks(image: &str, which: &str, enclave: &ImageEnclave) -> anyhow::Result<Vec<Check>> {
    use scone::cas::Cas;
    let (mrenclave, fspf_tag) = (enclave.mrenclave.as_str(), enclave.fspf_tag.as_str());
    let yaml = if let Some(rest) = which.strip_prefix("cas://") {
        let (host, name) = rest.split_once('/').ok_or_else(|| {
            UsageError::new(
                format!("--session `{which}`"),
                "write cas://HOST[:PORT]/NAME",
            )
        })?;
        let cas = scone::cas::remote::RemoteCas::connect_default(host, None)?;
        cas.session(name)?.map(|r| r.yaml)
    } else if let Some(name) = which.strip_prefix("cas:") {
        scone::cas::local::LocalCas::open_default()?
            .session(name)?
            .map(|r| r.yaml)
    } else {
        Some(std::fs::read_to_string(which).with_context(|| format!("reading {which}"))?)
    };
    let place = format!("session {which}");
    let Some(yaml) = yaml else {
        return Ok(vec![Check::holds(
            image,
            "session",
            &place,
            "the session",
            NONE,
            false,
            || "CAS has no such session".to_string(),
        )]);
    };
    let services =
        session::services(&yaml).ok_or_else(|| anyhow::anyhow!("{which} is no session"))?;
    let listed = entry_for(&services, enclave);
    let all: Vec<String> = services.iter().flat_map(|s| s.mrenclaves.clone()).collect();
    let mut checks = vec![Check::holds(
        image,
        "MRENCLAVE",
        &place,
        mrenclave,
        if all.is_empty() {
            NONE.to_string()
        } else {
            all.join(",")
        },
        listed.is_some(),
        || {
            "the session lists no service with this MRENCLAVE: CAS will not give this image its \
             secrets (the session is of another build, or the image was changed)"
                .to_string()
        },
    )];
    if let Some(s) = listed {
        checks.push(Check::compare(
            image,
            "fspf tag",
            format!("{place}, service {}", s.name),
            fspf_tag,
            s.fspf_tag.as_deref(),
            || "the session names other protected files than the image holds".to_string(),
        ));
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, mrenclave: &str, tag: &str) -> session::SessionService {
        session::SessionService {
            name: name.into(),
            image_name: None,
            mrenclaves: vec![mrenclave.into()],
            fspf_tag: Some(tag.into()),
        }
    }

    #[test]
    fn the_entry_of_an_image_is_its_own_among_services_of_one_runtime() {
        let image = |service: Option<&str>, tag: &str| ImageEnclave {
            binary: "/usr/bin/python3.11".into(),
            enclave_env: Vec::new(),
            debug: true,
            mrenclave: "m".into(),
            fspf_tag: tag.into(),
            service: service.map(Into::into),
        };
        let services = [
            entry("other", "n", "t2"),
            entry("api", "m", "t1"),
            entry("worker", "m", "t2"),
        ];
        let name = |e: Option<&session::SessionService>| e.map(|e| e.name.clone());
        // Named by its label, even where its tag is another's.
        let found = entry_for(&services, &image(Some("worker"), "t1"));
        assert_eq!(name(found), Some("worker".into()));
        // A label the session does not name (the mesh's name differs): by tag.
        let found = entry_for(&services, &image(Some("worker_build"), "t2"));
        assert_eq!(name(found), Some("worker".into()));
        // Neither: the first with its MRENCLAVE, whose tag then mismatches.
        let found = entry_for(&services, &image(None, "t9"));
        assert_eq!(name(found), Some("api".into()));
        // Another runtime's service is never taken.
        let other = ImageEnclave {
            mrenclave: "x".into(),
            ..image(Some("other"), "t2")
        };
        assert_eq!(name(entry_for(&services, &other)), None);
    }
}
