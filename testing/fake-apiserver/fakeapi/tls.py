"""TLS material (a throwaway CA and a server certificate) and the kubeconfig."""

from __future__ import annotations

import base64
import datetime
import os
import random
import shutil
import subprocess
import tempfile

import yaml


def make_certs(directory: str, tool: str = "auto") -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost. Reused if present."""
    ca, crt, key = (os.path.join(directory, n) for n in ("ca.crt", "tls.crt", "tls.key"))
    if all(os.path.exists(p) for p in (ca, crt, key)):
        return ca, crt, key
    if tool in ("auto", "cryptography"):
        try:
            _certs_with_cryptography(ca, crt, key)
            return ca, crt, key
        except ImportError:
            if tool == "cryptography":
                raise
    _certs_with_openssl(directory, ca, crt, key)
    return ca, crt, key


def _certs_with_cryptography(ca_path: str, crt_path: str, key_path: str) -> None:
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-apiserver-ca")])
    usage = dict(content_commitment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            key_encipherment=False, **usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         key_encipherment=True, **usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    with open(ca_path, "wb") as f:
        f.write(ca_cert.public_bytes(pem))
    with open(crt_path, "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key_path, 0o600)


def _certs_with_openssl(directory: str, ca: str, crt: str, key: str) -> None:
    openssl = shutil.which("openssl")
    if not openssl:
        raise SystemExit("fake-apiserver: --tls needs the 'cryptography' package or the openssl command")
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        ca_key, csr, ext = (os.path.join(tmp, n) for n in ("ca.key", "tls.csr", "ext.cnf"))
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        run = lambda *a: subprocess.run([openssl, *a], check=True, capture_output=True)
        run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "365", "-subj", "/CN=fake-apiserver-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=fake-apiserver")
        run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial",
            str(random.getrandbits(63)), "-out", crt, "-days", "365", "-extfile", ext)
        os.chmod(key, 0o600)


def write_kubeconfig(path: str, url: str, token: str, ca_path: str | None) -> None:
    cluster: dict = {"server": url}
    if ca_path:
        with open(ca_path, "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fake", "cluster": cluster}],
        "users": [{"name": "fake-user", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake-user", "namespace": "default"}}],
        "current-context": "fake",
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
