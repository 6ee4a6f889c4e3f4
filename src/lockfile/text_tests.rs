use super::*;

fn hex64(i: usize) -> String {
    format!("{i:064x}")
}

fn image(i: usize) -> ImageLock {
    ImageLock {
        reference: format!("registry.example:5000/mono/svc-{i:04}:latest"),
        digest: format!("sha256:{}", hex64(i)),
        mrenclave: hex64(i + 1),
        mrsigner: hex64(7),
        fspf_tag: hex64(i + 2),
    }
}

/// Locks in the shapes scone writes, empty tables and quoted keys included.
fn locks() -> Vec<Lockfile> {
    let mut out = vec![Lockfile {
        version: 1,
        ..Lockfile::default()
    }];
    let mut full = Lockfile {
        version: 1,
        ..Lockfile::default()
    };
    full.base.insert(
        "registry.example.com/library/python:3.11-slim".into(),
        BaseLock {
            digest: format!("sha256:{}", hex64(99)),
        },
    );
    full.base.insert("busybox".into(), BaseLock::default());
    for i in 0..50 {
        full.image.insert(format!("svc_{i:04}"), image(i));
    }
    full.image.insert("My-Svc_2".into(), ImageLock::default());
    full.session.insert(
        "mono-0".into(),
        SessionLock {
            content: hex64(5),
            cas_hash: Some(hex64(6)),
        },
    );
    full.session.insert(
        "myPythonApp".into(),
        SessionLock {
            content: hex64(8),
            cas_hash: None,
        },
    );
    out.push(full);
    let mut sessions_only = Lockfile {
        version: 3,
        ..Lockfile::default()
    };
    sessions_only
        .session
        .insert("a.b".into(), SessionLock::default());
    out.push(sessions_only);
    out
}

#[test]
fn writes_what_toml_writes() {
    for lock in locks() {
        let fast = write(&lock, lock.version).expect("a plain lock");
        assert_eq!(fast, toml::to_string(&lock).unwrap());
    }
}

#[test]
fn reads_what_it_writes_and_what_toml_reads() {
    for lock in locks() {
        let fast = write(&lock, lock.version).unwrap();
        assert_eq!(read(&fast).as_ref(), Some(&lock));
        let with_header = format!("# generated\n\n{fast}");
        let by_toml: Lockfile = toml::from_str(&with_header).unwrap();
        assert_eq!(read(&with_header), Some(by_toml));
    }
    let example = include_str!("../../scone.lock.example");
    let by_toml: Lockfile = toml::from_str(example).unwrap();
    assert_eq!(
        read(example),
        Some(by_toml),
        "the documented example, comments and all"
    );
}

#[test]
fn anything_unusual_is_left_to_toml() {
    let mut quoted = Lockfile::default();
    quoted.image.insert(
        "svc".into(),
        ImageLock {
            reference: "it's \"quoted\"".into(),
            ..ImageLock::default()
        },
    );
    assert_eq!(write(&quoted, 1), None);
    let mut unicode = Lockfile::default();
    unicode.base.insert("bäse".into(), BaseLock::default());
    assert_eq!(write(&unicode, 1), None);

    let base = write(&locks()[1], 1).unwrap();
    let odd = [
        base.replace("version = 1", "version=1"),
        base.replace("digest = ", "digest  = "),
        format!("{base}\n[image.svc_0001]\nreference = \"x\"\n"),
        format!("{base}extra = \"x\"\n"),
        base.replacen("mrsigner", "mrsignr", 1),
        base.replacen("content = ", "content = 'x' #", 1),
        base.replace("[image.svc_0003]", "[image.svc_0003.inner]"),
        base.replace("\"sha256:", "\"sha256:\\u0041"),
        base.replace("version = 1\n", ""),
        base.replace("version = 1", "version = -1"),
        format!("[base]\n{base}"),
    ];
    for (i, text) in odd.iter().enumerate() {
        assert!(read(text).is_none(), "odd text {i} was read");
    }
    // A commented-out line is still the canonical form: both read it the same.
    let commented = base.replacen("cas_hash = ", "# cas_hash = ", 1);
    let by_toml: Lockfile = toml::from_str(&commented).unwrap();
    assert_eq!(by_toml.session["mono-0"].cas_hash, None);
    assert!(read(&commented) == Some(by_toml));
}
