"""The reference checks of scone's SBOM and provenance (tests/attest.rs).

    check.py sbom SCHEMA.json SBOM.json
        validates the SPDX document against the SPDX 2.3 JSON schema (Draft 7).
    check.py provenance ENVELOPE.json PUBLIC.pem
        verifies the DSSE envelope with in-toto's implementation (its Envelope
        and securesystemslib's key from the PEM), then validates its payload as
        an in-toto Statement v1 (in-toto-attestation's bindings) and prints the
        statement as JSON.

Exits 0 when the check passes, 1 with the reason on stderr when it does not.
"""

import json
import sys


def sbom(schema_path, sbom_path):
    import jsonschema

    with open(schema_path) as f:
        schema = json.load(f)
    with open(sbom_path) as f:
        doc = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        for e in errors:
            print(f"{list(e.path)}: {e.message}", file=sys.stderr)
        sys.exit(1)
    print("valid")


def provenance(envelope_path, key_path):
    from google.protobuf import json_format
    from in_toto.models.metadata import Envelope, Metadata
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    envelope = Metadata.load(envelope_path)
    if not isinstance(envelope, Envelope):
        sys.exit("not a DSSE envelope of an in-toto payload")
    with open(key_path, "rb") as f:
        key = SSlibKey.from_crypto(load_pem_public_key(f.read()))
    try:
        envelope.verify_signature(key.to_dict() | {"keyid": key.keyid})
    except Exception as e:  # in-toto raises SignatureVerificationError
        print(f"signature: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    text = envelope.payload.decode("utf-8")
    proto = json_format.Parse(text, statement_pb2.Statement())
    Statement.copy_from_pb(proto).validate()
    print(json.dumps(json.loads(text)))


if __name__ == "__main__":
    {"sbom": sbom, "provenance": provenance}[sys.argv[1]](*sys.argv[2:])
