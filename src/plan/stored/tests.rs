use super::*;
use crate::oci::base::{BaseContext, BaseSpec};
use crate::oci::tar::Compression;
use crate::plan::{plan, plan_stored, Settings};
use crate::steps::base::BaseStep;
use crate::steps::chart::{ChartStep, ChartUnit};
use crate::steps::copy::CopyStep;
use crate::steps::image::ImageStep;
use crate::steps::layer::LayerStep;
use crate::steps::policy::{PolicySecret, PolicyService, PolicyStep};
use crate::steps::sign::SignStep;
use std::path::{Path, PathBuf};

fn pairs(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("K{i}"), format!("v {i} ü")))
        .collect()
}

/// Encodes `step`, decodes it, and encodes it again: the same bytes, params,
/// inputs and engine answers.
fn round_trip<S: Stored>(step: &S) {
    let mut first = Vec::new();
    step.encode(&mut first);
    let mut r = Reader(&first);
    let back = S::decode(step.id().clone(), &mut r).expect("decodes");
    assert!(r.is_empty(), "{}: all read", S::KIND);
    let mut again = Vec::new();
    back.encode(&mut again);
    assert_eq!(first, again, "{}", S::KIND);
    assert_eq!(back.params(), step.params(), "{}", S::KIND);
    assert_eq!(back.inputs(), step.inputs(), "{}", S::KIND);
    assert_eq!(back.cacheable(), step.cacheable(), "{}", S::KIND);
    assert_eq!(back.prepare_without(), step.prepare_without());
    // Cut short anywhere, it does not decode.
    for end in 0..first.len() {
        let mut r = Reader(&first[..end]);
        assert!(
            S::decode(step.id().clone(), &mut r).is_none(),
            "{} cut at {end}",
            S::KIND
        );
    }
}

#[test]
fn every_step_kind_round_trips_with_every_field_set() {
    let reference = "registry.example.com/base/img:1".to_string();
    round_trip(&BaseStep {
        id: StepId::new("base", &reference),
        spec: BaseSpec::parse(&reference).unwrap(),
        reference,
        context: BaseContext {
            cache_dir: PathBuf::from("/cache"),
            offline: true,
            pinned: Some("sha256:00".into()),
            insecure_registries: vec!["127.0.0.1:5000".into(), "b".into()],
            docker_host: Some("unix:///d.sock".into()),
        },
    });
    round_trip(&CopyStep {
        id: StepId::new("copy", "svc"),
        dir: PathBuf::from("/w/svc"),
        pwd: "/app".into(),
        copy: vec!["main.py".into(), "lib".into()],
    });
    round_trip(&LayerStep {
        id: StepId::new("layer", "svc"),
        compression: Compression::Zstd,
        mtime: 1_700_000_000,
    });
    round_trip(&ImageStep {
        id: StepId::new("image", "svc"),
        to: "example.com/svc:1".into(),
        env: pairs(3),
        pwd: "/app".into(),
        argv: vec!["python3".into(), "main.py".into(), String::new()],
        service: "svc".into(),
        created: 7,
    });
    round_trip(&SignStep {
        id: StepId::new("sign", "svc"),
        service: "svc".into(),
        binary: "/usr/bin/python3".into(),
        enclave_env: pairs(2),
        debug: false,
        date: 0x2026_1129,
        key: PathBuf::from("/keys/k.pem"),
    });
    round_trip(&PolicyStep {
        id: StepId::new("policy", "ns"),
        namespace: "ns".into(),
        services: (0..3)
            .map(|i| PolicyService {
                name: format!("s{i}"),
                unit: format!("u{i}"),
                image_name: format!("i{i}"),
                command: "app --x".into(),
                pwd: "/".into(),
                environment: pairs(i),
            })
            .collect(),
        secrets: vec![
            PolicySecret {
                name: "a".into(),
                kind: "ascii".into(),
                size: Some(24),
                fixed: false,
                export_to: vec!["s1".into(), "s2".into()],
            },
            PolicySecret {
                name: "b".into(),
                kind: "binary".into(),
                size: None,
                fixed: true,
                export_to: Vec::new(),
            },
        ],
        tolerate: vec!["debug-mode".into()],
        ignore_advisories: vec!["*".into()],
    });
    round_trip(&ChartStep {
        id: StepId::new("chart", "ns"),
        namespace: "ns".into(),
        version: "1.2.3".into(),
        cas_addr: "cas:8081".into(),
        services: vec![ChartUnit {
            name: "s".into(),
            unit: "u".into(),
            ports: vec![("http".into(), 8080, "TCP".into())],
        }],
        dir: "helm/ns".into(),
        chart_path: "target/helm/ns".into(),
        templates: Some(PathBuf::from("/t")),
        manifests_dir: Some("manifests/ns".into()),
    });
}

fn settings(root: &Path) -> Settings {
    Settings {
        target_dir: root.join("target"),
        source_date_epoch: 0,
        compression: Compression::Gzip,
        debug: true,
        signing_key: PathBuf::from("/keys/k.pem"),
        cache_dir: PathBuf::from("/cache"),
        offline: false,
        insecure_registries: Vec::new(),
        docker_host: None,
        pinned_bases: Default::default(),
        known_sessions: Default::default(),
        only: Vec::new(),
        helm_templates: None,
        output_yaml: false,
        apply: None,
    }
}

fn fixture() -> crate::workspace::Workspace {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/multi");
    crate::workspace::load(&crate::workspace::LoadOptions {
        files: vec![dir.join("mesh.yml")],
        cwd: dir,
    })
    .unwrap()
}

#[test]
fn a_stored_plan_decodes_to_the_plan_it_was_made_with() {
    let ws = fixture();
    let s = settings(&ws.root);
    let made = plan(&ws, &s).unwrap();
    let (again, bytes) = plan_stored(&ws, &s).unwrap();
    let bytes = bytes.expect("a build's plan is stored");
    assert_eq!(again.nodes.len(), made.nodes.len());
    assert_eq!(settings_of(&bytes), Some(s.digest()));
    // Stored inside a bigger file, as in a snapshot.
    let mut file = b"before".to_vec();
    file.extend_from_slice(&bytes);
    file.extend_from_slice(b"after");
    let range = 6..6 + bytes.len();
    let nodes = decode(&Arc::new(file.clone()), range.clone()).expect("decodes");
    assert_eq!(nodes.len(), made.nodes.len());
    let kinds: std::collections::BTreeSet<&str> =
        nodes.iter().map(|n| n.step.id().kind.as_str()).collect();
    assert_eq!(kinds.len(), 7, "every stored kind: {kinds:?}");
    for (stored, planned) in nodes.iter().zip(&made.nodes) {
        let (a, b) = (stored.step.as_ref(), planned.step.as_ref());
        assert_eq!(a.id(), b.id());
        assert_eq!(stored.deps, planned.deps, "{}", b.id());
        assert_eq!(a.cacheable(), b.cacheable(), "{}", b.id());
        assert_eq!(a.dep_reads(), b.dep_reads(), "{}", b.id());
        assert_eq!(a.prepare_without(), b.prepare_without(), "{}", b.id());
        assert_eq!(a.params(), b.params(), "{}", b.id());
        assert_eq!(a.param_pairs(), b.param_pairs(), "{}", b.id());
        assert_eq!(a.inputs(), b.inputs(), "{}", b.id());
    }
    // Cut short, or read from the wrong place: no plan.
    assert!(decode(&Arc::new(file.clone()), range.start..range.end - 1).is_none());
    assert!(decode(&Arc::new(file), range.start + 1..range.end).is_none());
}

#[test]
fn a_plan_with_apply_steps_is_not_stored() {
    let ws = fixture();
    let mut s = settings(&ws.root);
    s.apply = Some(crate::plan::ApplySettings {
        push: true,
        cas: crate::plan::CasChoice::Remote,
        ca_file: None,
    });
    let (planned, bytes) = plan_stored(&ws, &s).unwrap();
    assert!(planned.nodes.iter().any(|n| n.step.id().kind == "upload"));
    assert!(bytes.is_none());
}

#[test]
fn the_settings_digest_follows_every_setting_but_the_selected_services() {
    let root = Path::new("/w");
    let base = settings(root).digest();
    let mut s = settings(root);
    s.only = vec![1, 2];
    assert_eq!(
        s.digest(),
        base,
        "fixed by the command line and the workspace"
    );
    let changes: Vec<fn(&mut Settings)> = vec![
        |s| {
            s.pinned_bases.insert("oci:/b".into(), "sha256:1".into());
        },
        |s| {
            s.known_sessions.insert("ns".into(), "h".into());
        },
        |s| s.source_date_epoch = 1,
        |s| s.compression = Compression::Zstd,
        |s| s.debug = false,
        |s| s.signing_key = PathBuf::from("/other.pem"),
        |s| s.cache_dir = PathBuf::from("/c2"),
        |s| s.offline = true,
        |s| s.insecure_registries.push("r".into()),
        |s| s.docker_host = Some("tcp://x".into()),
        |s| s.helm_templates = Some(PathBuf::from("/t")),
        |s| s.output_yaml = true,
        |s| s.target_dir = PathBuf::from("/elsewhere"),
    ];
    for (i, change) in changes.into_iter().enumerate() {
        let mut s = settings(root);
        change(&mut s);
        assert_ne!(s.digest(), base, "change {i}");
    }
}

#[test]
fn a_step_that_does_not_decode_fails_and_matches_no_fingerprint() {
    let step = LayerStep {
        id: StepId::new("layer", "svc"),
        compression: Compression::Gzip,
        mtime: 0,
    };
    let mut recorder = Recorder::new([0; 32]);
    recorder.add(&step, &[]);
    let mut bytes = recorder.finish();
    // The body is last: the compression byte, then the mtime.
    let at = bytes.len() - 2;
    assert_eq!(bytes[at], 0);
    bytes[at] = 9;
    let len = bytes.len();
    let nodes = decode(&Arc::new(bytes), 0..len).expect("the frame is whole");
    let damaged = nodes[0].step.as_ref();
    assert_eq!(damaged.id(), step.id());
    assert!(damaged.params().contains_key("stored-plan"));
    assert_ne!(damaged.params(), step.params());
}
