#!/usr/bin/env python3
"""Writes a mesh of N python services shaped like fixtures/hello-world: each one a
`kind: python` service (the default python base: scripts/python-rootfs.sh) running
`python3 print_env.py` from /python, with a print_env.py of its own, and per service
a Dockerfile that builds the same image with `docker build` on a base image named
BASE (default `scone-python-base`, the same rootfs imported into dockerd). Also a
build.ninja of the user's view of the tree, for the no-op against ninja: per service
one stamp over its three files, and one over the Meshfile and the services' stamps
(as `bench/noop.sh`'s generator writes for its trees).

    bench/gen-python-mesh.py N DIR [BASE]
"""
import os
import sys

SERVICE = """apiVersion: scone/5.8
kind: genImage
environment:
  local:
    - name: API_PASSWORD
      value: "$$SCONE::password"
  global:
    - name: API_USER
secrets:
  global:
  - name: password
    kind: ascii
    size: 10
build:
  name: {name}
  kind: python
  to: registry.example.com/bench/{name}:latest
  pwd: /python
  command: python3 print_env.py
  copy:
    - print_env.py
"""

SCRIPT = """import os
print("service {name}:", os.environ.get("API_USER"), len(os.environ.get("API_PASSWORD", "")))
"""

DOCKERFILE = """FROM {base}
WORKDIR /python
COPY print_env.py /python/
ENV API_USER=myself
ENTRYPOINT ["python3", "print_env.py"]
"""


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    count, root = int(sys.argv[1]), sys.argv[2]
    base = sys.argv[3] if len(sys.argv) == 4 else "scone-python-base"
    os.makedirs(root, exist_ok=True)
    mesh = [
        "apiVersion: scone/5.8",
        "kind: mesh",
        "cas:",
        "  - name: cas",
        "    cas_url: cas.example.com",
        "policy:",
        "  namespace: bench",
        "env:",
        "  - name: API_USER",
        "    value: myself",
        "services:",
    ]
    for i in range(count):
        name = f"py-{i:04}"
        folder = os.path.join(root, "services", name)
        os.makedirs(folder, exist_ok=True)
        for file, text in (
            ("service.yml", SERVICE),
            ("print_env.py", SCRIPT),
            ("Dockerfile", DOCKERFILE),
        ):
            with open(os.path.join(folder, file), "w") as f:
                f.write(text.format(name=name, base=base))
        mesh += [
            f"  - name: {name}",
            f"    image: registry.example.com/bench/{name}:latest",
            f"    manifest: services/{name}/service.yml",
        ]
    with open(os.path.join(root, "mesh.yml"), "w") as f:
        f.write("\n".join(mesh) + "\n")
    ninja = ["rule stamp", "  command = touch $out", ""]
    stamps = []
    for i in range(count):
        name = f"py-{i:04}"
        files = " ".join(f"services/{name}/{file}" for file in ("Dockerfile", "print_env.py", "service.yml"))
        ninja.append(f"build stamps/{name}.stamp: stamp {files}")
        stamps.append(f"stamps/{name}.stamp")
    ninja.append(f"build stamps/mesh.stamp: stamp mesh.yml {' '.join(stamps)}")
    ninja.append("default stamps/mesh.stamp")
    os.makedirs(os.path.join(root, "stamps"), exist_ok=True)
    with open(os.path.join(root, "build.ninja"), "w") as f:
        f.write("\n".join(ninja) + "\n")


if __name__ == "__main__":
    main()
