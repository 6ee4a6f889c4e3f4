use std::collections::BTreeMap;

use super::*;
use crate::helm::input::{ChartInput, ChartPort, ChartService, LasAddr, SgxDevice};
use crate::helm::templates::TemplateSet;

fn digest(i: usize) -> String {
    format!("sha256:{}", hex::encode([i as u8; 32]))
}

fn service(namespace: &str, name: &str, i: usize) -> ChartService {
    ChartService::new(
        namespace,
        name,
        "registry.example:5050/team/app",
        &digest(i),
    )
}

/// Meshes that exercise every branch of the templates.
fn inputs() -> Vec<ChartInput> {
    let mut out = Vec::new();

    out.push(ChartInput::new("mesh", "0123456789ab", "cas.example:8081"));

    let mut one = ChartInput::new("mesh", "0123456789ab", "cas.example:8081");
    one.services.push(service("mesh", "api", 1));
    out.push(one);

    let mut rich = ChartInput::new("My_Mesh", "abc.def-1", "10.0.0.1:8081");
    rich.chart_version = "1.2.3-rc.1+b.7".into();
    rich.chart_path = "out/helm/My_Mesh".into();
    rich.las = LasAddr::NodeIpPort(18766);
    let mut a = service("My_Mesh", "python_app", 2);
    a.ports = vec![
        ChartPort::tcp("Web__Api", 8080),
        ChartPort {
            name: String::new(),
            port: 53,
            protocol: "udp".into(),
        },
    ];
    a.replicas = 3;
    a.resources.requests = BTreeMap::from([
        ("cpu".to_string(), "100m".to_string()),
        ("memory".to_string(), "128Mi".to_string()),
    ]);
    a.resources.limits = BTreeMap::from([("memory".to_string(), "1Gi".to_string())]);
    a.env = vec![
        ("GREETING".into(), "say \"hi\"\\n\tnow".into()),
        (
            "PRICE".into(),
            "$(HOME) costs 5$ – ünïcödé \u{2028} \u{7f}".into(),
        ),
        ("EMPTY".into(), String::new()),
        ("MULTI".into(), "line one\nline two\r\n\u{1}".into()),
    ];
    rich.services.push(a);
    rich.services.push(service("My_Mesh", "9lives", 3));
    rich.services.push(service("My_Mesh", "zeta-service", 4));
    out.push(rich);

    let mut fixed = ChartInput::new("plain", "v1", "cas:1");
    fixed.las = LasAddr::Fixed("las.example:18766".into());
    fixed.sgx = SgxDevice {
        resource: String::new(),
        quantity: "1".into(),
    };
    fixed.release = Some("Release_Name".into());
    for i in 0..5 {
        fixed
            .services
            .push(service("plain", &format!("svc_{i:02}"), i + 10));
    }
    out.push(fixed);

    let mut intel = ChartInput::new("intel", "v2", "cas:2");
    intel.sgx = SgxDevice {
        resource: "sgx.intel.com/enclave".into(),
        quantity: "2".into(),
    };
    intel.release = Some("ok-release".into());
    intel.services.push(service("intel", "a", 20));
    intel.services.push(service("intel", "b", 21));
    out.push(intel);
    out
}

#[test]
fn writers_match_the_handlebars_templates_byte_for_byte() {
    let set = TemplateSet::embedded();
    let registry = set.registry().unwrap();
    for input in inputs() {
        let (model, _) = ChartModel::build(&input).unwrap();
        let context = handlebars::Context::wraps(&model).unwrap();
        for name in MIRRORED {
            let file = &set.files()[name];
            let expected = registry.render_with_context(name, &context).unwrap();
            let native = render(name, &file.bytes, &model).expect("a writer for it");
            assert_eq!(native, expected, "{name} of mesh {}", input.namespace);
        }
    }
}

#[test]
fn changed_or_unknown_templates_are_left_to_handlebars() {
    let (model, _) = ChartModel::build(&inputs()[1]).unwrap();
    assert!(render("values.yaml.hbs", b"services: {{namespace}}\n", &model).is_none());
    assert!(!covers("values.yaml.hbs", b"services: {{namespace}}\n"));
    let deployment = embedded_text("manifests/deployment.yaml.hbs").unwrap();
    assert!(covers(
        "manifests/deployment.yaml.hbs",
        deployment.as_bytes()
    ));
    assert!(render(
        "manifests/deployment.yaml.hbs",
        deployment.as_bytes(),
        &model
    )
    .is_none());
    assert!(!covers("extra.yaml.hbs", b"x"));
    for name in MIRRORED {
        let text = embedded_text(name).unwrap();
        assert!(covers(name, text.as_bytes()), "{name}");
    }
}

#[test]
fn yaml_strings_are_json_strings() {
    for text in [
        "plain",
        "",
        "q\"b\\s",
        "tab\t",
        "ünï",
        "\u{1}\u{7f}",
        "a\u{2028}b",
    ] {
        let mut out = String::new();
        push_json(&mut out, text);
        assert_eq!(out, serde_json::to_string(text).unwrap(), "{text:?}");
    }
}

#[test]
fn user_templates_still_go_through_handlebars() {
    let input = &inputs()[2];
    let embedded = crate::helm::render_chart(input, None, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An unchanged copy gives the same chart; a changed one is rendered as written.
    std::fs::write(
        dir.path().join("values.yaml.hbs"),
        embedded_text("values.yaml.hbs").unwrap(),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/NOTES.txt.hbs"),
        "{{#each services}}{{key}};{{/each}}\n",
    )
    .unwrap();
    let chart = crate::helm::render_chart(input, Some(dir.path()), false).unwrap();
    let values = std::path::PathBuf::from("values.yaml");
    assert_eq!(chart.files[&values], embedded.files[&values]);
    let notes = &chart.files[&std::path::PathBuf::from("templates/NOTES.txt")];
    assert_eq!(
        String::from_utf8_lossy(notes),
        "python-app;svc-9lives;zeta-service;\n"
    );

    // A broken user template is reported even when nothing renders it.
    std::fs::create_dir(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/extra.yaml.hbs"), "{{#if}}").unwrap();
    let err = crate::helm::render_chart(input, Some(dir.path()), false).unwrap_err();
    assert!(err.to_string().contains("extra.yaml.hbs"), "{err}");
}
