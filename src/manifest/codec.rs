//! A compact binary form of a parsed [`ServiceManifest`] and [`Mesh`] (every
//! value with its line and column), so that the parse cache of the workspace
//! loader (see `workspace::load::parse_cache`) can skip YAML for manifests whose
//! text did not change. Decoding is all-or-nothing: any malformed input is `None`.
//!
//! Every struct is destructured exhaustively, so a field added to the model
//! does not compile until it is encoded here too.
//!
//! A secret's fixed value is never written: only that it is given, and where
//! (it reads back as [`FixedValue::Withheld`]). The parse cache lives under
//! `target/` and the snapshot in the user cache, where no secret may be.

use super::located::{Located, Pos};
use super::model::{
    Build, Cas, EnvVar, Environment, FixedValue, Mesh, MeshEnvEntry, MeshService, Policy, Port,
    Secret, Secrets, ServiceManifest, Signature, StringOrList, Unused,
};
use super::template::Variables;
use std::path::PathBuf;

/// Encodes a service manifest (without its `path`, which the loader sets).
pub fn encode_service(m: &ServiceManifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    m.put(&mut out);
    out
}

/// Decodes what [`encode_service`] wrote; `path` is left empty.
pub fn decode_service(bytes: &[u8]) -> Option<ServiceManifest> {
    let mut r = Reader(bytes);
    let m = ServiceManifest::get(&mut r)?;
    r.0.is_empty().then_some(m)
}

/// Encodes a Meshfile (without its `path`) and the template variables it defines.
pub fn encode_mesh(mesh: &Mesh, vars: &Variables) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    mesh.put(&mut out);
    len(vars.len()).put(&mut out);
    for (k, v) in vars {
        k.put(&mut out);
        v.put(&mut out);
    }
    out
}

/// Decodes what [`encode_mesh`] wrote; the mesh's `path` is left empty.
pub fn decode_mesh(bytes: &[u8]) -> Option<(Mesh, Variables)> {
    let mut r = Reader(bytes);
    let mesh = Mesh::get(&mut r)?;
    let n = u32::get(&mut r)?;
    let mut vars = Variables::new();
    for _ in 0..n {
        let k = String::get(&mut r)?;
        let v = String::get(&mut r)?;
        vars.insert(k, v);
    }
    r.0.is_empty().then_some((mesh, vars))
}

/// A cursor over encoded bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
}

trait Codec: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Option<Self>;
}

impl Codec for u32 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(u32::from_le_bytes(r.take(4)?.try_into().ok()?))
    }
}

impl Codec for u16 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(u16::from_le_bytes(r.take(2)?.try_into().ok()?))
    }
}

impl Codec for Unused {
    fn put(&self, _out: &mut Vec<u8>) {}
    fn get(_r: &mut Reader<'_>) -> Option<Self> {
        Some(Unused)
    }
}

impl Codec for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        match r.take(1)?[0] {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

impl Codec for String {
    fn put(&self, out: &mut Vec<u8>) {
        len(self.len()).put(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        let n = usize::try_from(u32::get(r)?).ok()?;
        String::from_utf8(r.take(n)?.to_vec()).ok()
    }
}

/// A length as written (manifests are far below 4 GiB).
fn len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Codec for Pos {
    fn put(&self, out: &mut Vec<u8>) {
        self.line.put(out);
        self.column.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Pos {
            line: u32::get(r)?,
            column: u32::get(r)?,
        })
    }
}

impl<T: Codec> Codec for Located<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.value.put(out);
        self.pos.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Located {
            value: T::get(r)?,
            pos: Pos::get(r)?,
        })
    }
}

impl<T: Codec> Codec for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        match r.take(1)?[0] {
            0 => Some(None),
            1 => Some(Some(T::get(r)?)),
            _ => None,
        }
    }
}

impl<T: Codec> Codec for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        len(self.len()).put(out);
        for v in self {
            v.put(out);
        }
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        let n = usize::try_from(u32::get(r)?).ok()?;
        // Every element takes at least one byte: a bogus count fails early.
        if n > r.0.len() {
            return None;
        }
        (0..n).map(|_| T::get(r)).collect()
    }
}

impl Codec for ServiceManifest {
    fn put(&self, out: &mut Vec<u8>) {
        let ServiceManifest {
            api_version,
            kind,
            environment,
            secrets,
            build,
            ports,
            injection_files,
            requirements,
            path: _,
        } = self;
        api_version.put(out);
        kind.put(out);
        environment.put(out);
        secrets.put(out);
        build.put(out);
        ports.put(out);
        injection_files.put(out);
        requirements.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(ServiceManifest {
            api_version: Codec::get(r)?,
            kind: Codec::get(r)?,
            environment: Codec::get(r)?,
            secrets: Codec::get(r)?,
            build: Codec::get(r)?,
            ports: Codec::get(r)?,
            injection_files: Codec::get(r)?,
            requirements: Codec::get(r)?,
            path: PathBuf::new(),
        })
    }
}

impl Codec for Environment {
    fn put(&self, out: &mut Vec<u8>) {
        let Environment { local, global } = self;
        local.put(out);
        global.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Environment {
            local: Codec::get(r)?,
            global: Codec::get(r)?,
        })
    }
}

impl Codec for EnvVar {
    fn put(&self, out: &mut Vec<u8>) {
        let EnvVar { name, value } = self;
        name.put(out);
        value.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(EnvVar {
            name: Codec::get(r)?,
            value: Codec::get(r)?,
        })
    }
}

impl Codec for Secrets {
    fn put(&self, out: &mut Vec<u8>) {
        let Secrets {
            global,
            local,
            import,
        } = self;
        global.put(out);
        local.put(out);
        import.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Secrets {
            global: Codec::get(r)?,
            local: Codec::get(r)?,
            import: Codec::get(r)?,
        })
    }
}

impl Codec for Secret {
    fn put(&self, out: &mut Vec<u8>) {
        let Secret {
            name,
            kind,
            size,
            value,
            private_key,
            issuer,
            dns,
            common_name,
        } = self;
        name.put(out);
        kind.put(out);
        size.put(out);
        value.put(out);
        private_key.put(out);
        issuer.put(out);
        dns.put(out);
        common_name.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Secret {
            name: Codec::get(r)?,
            kind: Codec::get(r)?,
            size: Codec::get(r)?,
            value: Codec::get(r)?,
            private_key: Codec::get(r)?,
            issuer: Codec::get(r)?,
            dns: Codec::get(r)?,
            common_name: Codec::get(r)?,
        })
    }
}

/// Nothing: a fixed value is not written (its `Located` keeps where it was).
impl Codec for FixedValue {
    fn put(&self, _out: &mut Vec<u8>) {}
    fn get(_r: &mut Reader<'_>) -> Option<Self> {
        Some(FixedValue::Withheld)
    }
}

impl Codec for Build {
    fn put(&self, out: &mut Vec<u8>) {
        let Build {
            name,
            kind,
            from,
            to,
            pwd,
            command,
            copy,
            binary,
            signature,
            requirements,
            run,
            stable,
            host_paths,
            host_path,
        } = self;
        name.put(out);
        kind.put(out);
        from.put(out);
        to.put(out);
        pwd.put(out);
        command.put(out);
        copy.put(out);
        binary.put(out);
        signature.put(out);
        requirements.put(out);
        run.put(out);
        stable.put(out);
        host_paths.put(out);
        host_path.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Build {
            name: Codec::get(r)?,
            kind: Codec::get(r)?,
            from: Codec::get(r)?,
            to: Codec::get(r)?,
            pwd: Codec::get(r)?,
            command: Codec::get(r)?,
            copy: Codec::get(r)?,
            binary: Codec::get(r)?,
            signature: Codec::get(r)?,
            requirements: Codec::get(r)?,
            run: Codec::get(r)?,
            stable: Codec::get(r)?,
            host_paths: Codec::get(r)?,
            host_path: Codec::get(r)?,
        })
    }
}

impl Codec for Signature {
    fn put(&self, out: &mut Vec<u8>) {
        let Signature { key, sign } = self;
        key.put(out);
        sign.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Signature {
            key: Codec::get(r)?,
            sign: Codec::get(r)?,
        })
    }
}

impl Codec for Port {
    fn put(&self, out: &mut Vec<u8>) {
        let Port {
            name,
            port,
            protocol,
        } = self;
        name.put(out);
        port.put(out);
        protocol.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Port {
            name: Codec::get(r)?,
            port: Codec::get(r)?,
            protocol: Codec::get(r)?,
        })
    }
}

impl Codec for Mesh {
    fn put(&self, out: &mut Vec<u8>) {
        let Mesh {
            api_version,
            kind,
            cas,
            policy,
            env,
            services,
            version,
            helm,
            helm_extra_values,
            extra_policies,
            path: _,
        } = self;
        api_version.put(out);
        kind.put(out);
        cas.put(out);
        policy.put(out);
        env.put(out);
        services.put(out);
        version.put(out);
        helm.put(out);
        helm_extra_values.put(out);
        extra_policies.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Mesh {
            api_version: Codec::get(r)?,
            kind: Codec::get(r)?,
            cas: Codec::get(r)?,
            policy: Codec::get(r)?,
            env: Codec::get(r)?,
            services: Codec::get(r)?,
            version: Codec::get(r)?,
            helm: Codec::get(r)?,
            helm_extra_values: Codec::get(r)?,
            extra_policies: Codec::get(r)?,
            path: PathBuf::new(),
        })
    }
}

impl Codec for Cas {
    fn put(&self, out: &mut Vec<u8>) {
        let Cas {
            name,
            cas_url,
            alias,
            cas_key,
            cas_software_key,
            cas_encryption_key,
            tolerance,
            mode,
        } = self;
        name.put(out);
        cas_url.put(out);
        alias.put(out);
        cas_key.put(out);
        cas_software_key.put(out);
        cas_encryption_key.put(out);
        tolerance.put(out);
        mode.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Cas {
            name: Codec::get(r)?,
            cas_url: Codec::get(r)?,
            alias: Codec::get(r)?,
            cas_key: Codec::get(r)?,
            cas_software_key: Codec::get(r)?,
            cas_encryption_key: Codec::get(r)?,
            tolerance: Codec::get(r)?,
            mode: Codec::get(r)?,
        })
    }
}

impl Codec for Policy {
    fn put(&self, out: &mut Vec<u8>) {
        let Policy {
            namespace,
            tolerate,
            ignore_advisories,
            attestation_policy_name,
            access_policy_name,
            security_policy_name,
        } = self;
        namespace.put(out);
        tolerate.put(out);
        ignore_advisories.put(out);
        attestation_policy_name.put(out);
        access_policy_name.put(out);
        security_policy_name.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(Policy {
            namespace: Codec::get(r)?,
            tolerate: Codec::get(r)?,
            ignore_advisories: Codec::get(r)?,
            attestation_policy_name: Codec::get(r)?,
            access_policy_name: Codec::get(r)?,
            security_policy_name: Codec::get(r)?,
        })
    }
}

impl Codec for StringOrList {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            StringOrList::One(s) => {
                out.push(0);
                s.put(out);
            }
            StringOrList::Many(v) => {
                out.push(1);
                v.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        match r.take(1)?[0] {
            0 => Some(StringOrList::One(Codec::get(r)?)),
            1 => Some(StringOrList::Many(Codec::get(r)?)),
            _ => None,
        }
    }
}

impl Codec for MeshEnvEntry {
    fn put(&self, out: &mut Vec<u8>) {
        let MeshEnvEntry {
            key,
            name,
            value,
            service,
            env,
        } = self;
        key.put(out);
        name.put(out);
        value.put(out);
        service.put(out);
        env.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(MeshEnvEntry {
            key: Codec::get(r)?,
            name: Codec::get(r)?,
            value: Codec::get(r)?,
            service: Codec::get(r)?,
            env: Codec::get(r)?,
        })
    }
}

impl Codec for MeshService {
    fn put(&self, out: &mut Vec<u8>) {
        let MeshService {
            name,
            image,
            manifest,
            image_secrets,
            helm_extra_values,
        } = self;
        name.put(out);
        image.put(out);
        manifest.put(out);
        image_secrets.put(out);
        helm_extra_values.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(MeshService {
            name: Codec::get(r)?,
            image: Codec::get(r)?,
            manifest: Codec::get(r)?,
            image_secrets: Codec::get(r)?,
            helm_extra_values: Codec::get(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;
    use std::path::Path;

    const FULL: &str = r#"apiVersion: scone/5.8
kind: genImage
environment:
  local:
    - name: A
      value: "1"
    - name: EMPTY
  global:
    - name: LOG_LEVEL
      value: info
secrets:
  global:
    - name: shared
      kind: ascii
      size: 16
  local:
    - name: cert
      kind: binary
      value: |
        line one
        line two
  import: [other]
build:
  name: api
  kind: python
  from: "dir:../base"
  to: "registry.example/api:1"
  pwd: /app
  command: "python3 main.py"
  copy: [main.py, lib]
  binary: /usr/bin/python3
  signature:
    key: keys/k.pem
ports:
  - name: http
    port: 8080
    protocol: TCP
  - name: grpc
    port: 9090
"#;

    #[test]
    fn round_trips_every_field_and_position() {
        let m: ServiceManifest = parse::from_yaml(FULL, Path::new("s.yml")).unwrap();
        let bytes = encode_service(&m);
        let back = decode_service(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{m:?}"));
        assert_eq!(back.build.copy[1].pos.line, 30);
        assert_eq!(back.build.copy[1].pos, m.build.copy[1].pos);
        assert_eq!(back.ports[0].port.value, 8080);
        let given = m.secrets.local[0].value.as_ref().unwrap();
        assert_eq!(given.value.expose(), Some("line one\nline two\n"));
        let back = back.secrets.local[0].value.as_ref().unwrap();
        assert_eq!(back.value, FixedValue::Withheld, "the value is not kept");
        assert_eq!(back.pos, given.pos);
        assert!(!bytes.windows(8).any(|w| w == b"line one"));
    }

    #[test]
    fn truncated_or_extended_bytes_are_no_manifest() {
        let m: ServiceManifest = parse::from_yaml(FULL, Path::new("s.yml")).unwrap();
        let bytes = encode_service(&m);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_service(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(decode_service(&longer).is_none());
    }

    const MESH: &str = r#"apiVersion: scone/5.8
kind: mesh
cas:
  - name: cas
    cas_url: "cas.example:8081"
    alias: main
    cas_key: abc
    tolerance: "--only_for_testing-debug"
    mode: production
policy:
  namespace: "{{ns}}"
  tolerate: "debug-mode, hyperthreading"
  ignore_advisories: [INTEL-SA-1, INTEL-SA-2]
version: 1.2.3
env:
  - name: ns
    value: team
  - key: LOG
    value: info
  - service: api
    env:
      - name: PORT
        value: "80"
services:
  - name: api
    image: r/api:1
    manifest: api/service.yml
  - name: db
    image: r/db:1
"#;

    #[test]
    fn mesh_round_trips_with_its_variables() {
        let (mesh, vars) = parse::parse_mesh(MESH, Path::new("mesh.yml")).unwrap();
        assert_eq!(
            mesh.policy.namespace.value, "team",
            "rendered with its variables"
        );
        let bytes = encode_mesh(&mesh, &vars);
        let (back, back_vars) = decode_mesh(&bytes).unwrap();
        let mut expected = mesh.clone();
        expected.path = PathBuf::new();
        assert_eq!(format!("{back:?}"), format!("{expected:?}"));
        assert_eq!(back_vars, vars);
        assert!(!vars.is_empty());
        assert!(matches!(back.policy.tolerate, Some(StringOrList::One(_))));
        assert!(
            matches!(back.policy.ignore_advisories, Some(StringOrList::Many(ref v)) if v.len() == 2)
        );
        assert!(decode_mesh(&bytes[..bytes.len() - 1]).is_none());
    }
}
