//! `docker.engines`: several engines, each with a name, endpoint, optional TLS files, cap and
//! labels; a single `docker.endpoint` is a set of one. Every problem names its YAML path.

use warmpool_config::parse;

fn problems(yaml: &str) -> Vec<String> {
    parse(yaml, "t.yaml", vec![])
        .unwrap_err()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_single_endpoint_is_a_set_of_one_engine() {
    let c = parse(
        "docker: { endpoint: 'unix:///run/x.sock' }\npools: { p: { image: x } }\n",
        "t",
        vec![],
    )
    .unwrap();
    assert_eq!(c.docker.engines.len(), 1);
    assert_eq!(c.docker.engines[0].name, "default");
    assert_eq!(
        c.docker.engines[0].endpoint.as_deref(),
        Some("unix:///run/x.sock")
    );
    let c = parse("pools: { p: { image: x } }\n", "t", vec![]).unwrap();
    assert_eq!(
        c.docker.engines[0].endpoint, None,
        "DOCKER_HOST or the local socket"
    );
}

#[test]
fn engines_are_read_with_their_labels_caps_and_tls() {
    let dir = std::env::temp_dir().join(format!("wp-engines-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(dir.join(f), "pem").unwrap();
    }
    let d = dir.display();
    let yaml = format!(
        r#"
docker:
  engines:
    - {{ name: a, endpoint: "unix:///run/a.sock", max_containers: 5, labels: {{ zone: a }} }}
    - name: b
      endpoint: "tcp://10.0.0.2:2376"
      tls: {{ ca: {d}/ca.pem, cert: {d}/cert.pem, key: {d}/key.pem }}
    - {{ name: c, endpoint: "ssh://user:secret@host" }}
pools: {{ p: {{ image: x }} }}
"#
    );
    let c = parse(&yaml, "t", vec![]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let e = &c.docker.engines;
    assert_eq!(
        e.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(e[0].max_containers, Some(5));
    assert_eq!(e[0].labels["zone"], "a");
    assert!(e[1].tls.is_some());
    assert_eq!(e[2].redacted_endpoint(), "ssh://***@host");
}

#[test]
fn every_engine_problem_names_its_path() {
    let yaml = r#"
docker:
  engines:
    - { name: a, endpoint: "unix:///run/a.sock" }
    - { name: a, endpoint: "ftp://x" }
    - { name: "Bad Name", endpoint: "tcp://h:1", tls: { ca: /nonexistent/ca.pem, cert: /nonexistent/c.pem } }
    - { name: d, endpoint: "unix:///run/d.sock", tls: { ca: x, cert: y, key: z }, max_containers: 0 }
pools: { p: { image: x } }
"#;
    let p = problems(yaml).join("\n");
    for want in [
        "docker.engines[1].name",
        "docker.engines[1].endpoint",
        "docker.engines[2].name",
        "docker.engines[2].tls.ca",
        "docker.engines[2].tls.key",
        "docker.engines[3]",
    ] {
        assert!(p.contains(want), "no problem at {want}:\n{p}");
    }
    let unknown = problems(
        "docker: { engines: [ { name: a, endpoint: 'unix:///a', colour: red } ] }\npools: { p: { image: x } }\n",
    );
    assert!(
        unknown
            .iter()
            .any(|l| l.contains("docker.engines[0].colour")),
        "{unknown:?}"
    );
    let both =
        problems("docker: { endpoint: 'unix:///a', engines: [] }\npools: { p: { image: x } }\n");
    assert!(both.iter().any(|l| l.contains("docker")), "{both:?}");
    let none = problems("docker: { engines: [] }\npools: { p: { image: x } }\n");
    assert!(
        none.iter()
            .any(|l| l.contains("docker.engines") && l.contains("at least one")),
        "{none:?}"
    );
}
