"""Vendor GraphiQL's browser files into ``server/static/graphiql/``.

Downloads five npm package tarballs from the npm registry, checks each against the
``dist.integrity`` the registry publishes AND against the value pinned below, checks every
extracted file against the SRI hash Strawberry's own GraphiQL page pins for it, and writes
only the browser builds, each package's license, ``VERSIONS.json`` (the manifest the tests
read) and ``README.md``. Running it again rewrites nothing unless upstream changed, and if
upstream changed it fails before writing anything.

    .venv/bin/python scripts/vendor_graphiql.py

Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "server" / "static" / "graphiql"
COMMAND = ".venv/bin/python scripts/vendor_graphiql.py"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    # sha512 of the tarball, as the registry's dist.integrity published it when this was pinned.
    integrity: str
    # path inside the tarball -> (file name under DEST, sha384 SRI pinned by Strawberry's page or None)
    files: dict[str, tuple[str, str | None]]
    # the tarball's license file, or None when the tarball has none
    license_file: str | None


PACKAGES = [
    Package(
        "react",
        "18.2.0",
        "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==",
        {
            "package/umd/react.production.min.js": (
                "react.production.min.js",
                "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
            ),
        },
        "package/LICENSE",
    ),
    Package(
        "react-dom",
        "18.2.0",
        "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==",
        {
            "package/umd/react-dom.production.min.js": (
                "react-dom.production.min.js",
                "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
            ),
        },
        "package/LICENSE",
    ),
    Package(
        "js-cookie",
        "3.0.5",
        "sha512-cEiJEAEoIbWfCZYKWhVwFuvPX1gETRYPw6LlaTKoxD3s2AkXzkCjnp6h0V77ozyqj0jakteJ4YqDJT830+lVGw==",
        {
            "package/dist/js.cookie.min.js": (
                "js.cookie.min.js",
                "sha384-/vxhYfM1LENRhdpZ8dwEsQn/X4VhpbEZSiU4m/FwR+PVpzar4fkEOw8FP9Y+OfQN",
            ),
        },
        "package/LICENSE",
    ),
    Package(
        "graphiql",
        "3.8.3",
        "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
        {
            "package/graphiql.min.js": (
                "graphiql.min.js",
                "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
            ),
            "package/graphiql.min.css": (
                "graphiql.min.css",
                "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
            ),
        },
        "package/LICENSE",
    ),
    Package(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
        {
            "package/dist/index.umd.js": (
                "plugin-explorer.umd.js",
                "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
            ),
            "package/dist/style.css": (
                "plugin-explorer.css",
                "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
            ),
        },
        None,  # the 1.0.2 tarball ships no LICENSE file; see explorer_license()
    ),
]


class VendorError(Exception):
    pass


def sri(algorithm: str, data: bytes) -> str:
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode('ascii')}"


def short_name(name: str) -> str:
    """``@graphiql/plugin-explorer`` -> ``plugin-explorer``: the stem of the license file's name."""
    return name.rsplit("/", 1)[-1]


def get(url: str) -> bytes:
    if not url.startswith(REGISTRY + "/"):
        raise VendorError(f"refusing to download from outside the npm registry: {url}")
    # S310: the URL is checked above to be an https URL of the registry
    request = urllib.request.Request(url, headers={"User-Agent": "alphanode-vendor-graphiql"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return response.read()


def metadata(pkg: Package) -> dict:
    return json.loads(get(f"{REGISTRY}/{urllib.parse.quote(pkg.name, safe='@')}/{pkg.version}"))


def explorer_license(meta: dict, graphiql_license: bytes) -> bytes:
    repo = meta.get("repository") or {}
    header = (
        f"{meta['name']}@{meta['version']}: the npm tarball contains no LICENSE file.\n"
        f'Its package.json declares "license": "{meta.get("license")}" and the repository\n'
        f"{repo.get('url')} (directory {repo.get('directory')}).\n"
        "The text below is the MIT license file shipped by graphiql@3.8.3, built from that same repository.\n"
        "\n"
    )
    return header.encode("utf-8") + graphiql_license


def fetch_package(pkg: Package) -> tuple[dict, dict[str, bytes]]:
    """The registry metadata and {tarball path: bytes} of the wanted files, every hash checked."""
    meta = metadata(pkg)
    if meta.get("name") != pkg.name or meta.get("version") != pkg.version:
        raise VendorError(f"{pkg.name}@{pkg.version}: the registry answered {meta.get('name')}@{meta.get('version')}")
    dist = meta["dist"]
    if dist.get("integrity") != pkg.integrity:
        raise VendorError(
            f"{pkg.name}@{pkg.version}: the registry's dist.integrity changed\n"
            f"  pinned:   {pkg.integrity}\n  registry: {dist.get('integrity')}"
        )
    tarball = get(dist["tarball"])
    actual = sri("sha512", tarball)
    if actual != pkg.integrity:
        raise VendorError(
            f"{pkg.name}@{pkg.version}: the tarball does not match its integrity\n"
            f"  expected: {pkg.integrity}\n  actual:   {actual}"
        )
    wanted = list(pkg.files) + ([pkg.license_file] if pkg.license_file else [])
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for path in wanted:
            try:
                member = tar.getmember(path)
            except KeyError:
                raise VendorError(f"{pkg.name}@{pkg.version}: {path} is not in the tarball") from None
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is None:
                raise VendorError(f"{pkg.name}@{pkg.version}: {path} is not a regular file")
            out[path] = extracted.read()
    for path, (_, pinned) in pkg.files.items():
        if pinned is not None and sri("sha384", out[path]) != pinned:
            raise VendorError(
                f"{pkg.name}@{pkg.version}: {path} does not match the hash Strawberry's page pins\n"
                f"  expected: {pinned}\n  actual:   {sri('sha384', out[path])}"
            )
    return meta, out


def file_entry(name: str, source: str, data: bytes) -> dict:
    return {
        "path": name,
        "source": source,
        "size": len(data),
        "sha384": sri("sha384", data),
        "sha512": sri("sha512", data),
    }


def readme(manifest: dict) -> str:
    lines = [
        "# Vendored GraphiQL",
        "",
        "GraphiQL's browser files, served by the app from `/static/graphiql/` so the GraphiQL page",
        "loads nothing from outside the service. Generated; do not edit by hand. Regenerate with:",
        "",
        "```",
        manifest["command"],
        "```",
        "",
        "The script checks each tarball against the registry's `dist.integrity` and the value pinned",
        "in the script, and each file against the SRI hash Strawberry's own GraphiQL page pins.",
        "`VERSIONS.json` records every file's size, sha384 and sha512 (the tests check them).",
        "",
        "| package | version | license | tarball integrity |",
        "| --- | --- | --- | --- |",
    ]
    for p in manifest["packages"]:
        lines.append(f"| {p['name']} | {p['version']} | {p['license']} | `{p['integrity']}` |")
    lines += ["", "| file | from | bytes | sha384 |", "| --- | --- | --- | --- |"]
    for p in manifest["packages"]:
        for f in p["files"]:
            lines.append(f"| `{f['path']}` | {p['name']}: `{f['source']}` | {f['size']} | `{f['sha384']}` |")
    lines.append("")
    return "\n".join(lines)


def write(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.write_bytes(data)
    return True


def main() -> int:
    fetched: list[tuple[Package, dict, dict[str, bytes]]] = []
    try:
        for pkg in PACKAGES:
            meta, files = fetch_package(pkg)
            fetched.append((pkg, meta, files))
            print(f"ok  {pkg.name}@{pkg.version}  {pkg.integrity}")
    except VendorError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1

    graphiql_license = next(files["package/LICENSE"] for pkg, _, files in fetched if pkg.name == "graphiql")
    outputs: dict[str, bytes] = {}
    manifest: dict = {"command": COMMAND, "packages": []}
    for pkg, meta, files in fetched:
        entries = []
        for source, (name, _) in pkg.files.items():
            outputs[name] = files[source]
            entries.append(file_entry(name, source, files[source]))
        license_name = f"LICENSE.{short_name(pkg.name)}.txt"
        if pkg.license_file:
            outputs[license_name] = files[pkg.license_file]
            entries.append(file_entry(license_name, pkg.license_file, files[pkg.license_file]))
        else:
            outputs[license_name] = explorer_license(meta, graphiql_license)
            entries.append(
                file_entry(license_name, "(written by the script: no LICENSE in the tarball)", outputs[license_name])
            )
        manifest["packages"].append(
            {
                "name": pkg.name,
                "version": pkg.version,
                "license": meta.get("license"),
                "integrity": pkg.integrity,
                "files": entries,
            }
        )
    outputs["VERSIONS.json"] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    outputs["README.md"] = readme(manifest).encode("utf-8")

    DEST.mkdir(parents=True, exist_ok=True)
    changed = [name for name, data in outputs.items() if write(DEST / name, data)]
    stale = sorted(p.name for p in DEST.iterdir() if p.name not in outputs)
    total = sum(len(data) for data in outputs.values())
    print(f"{len(outputs)} files, {total} bytes in {DEST.relative_to(ROOT)}; changed: {', '.join(changed) or 'none'}")
    if stale:
        print(f"warning: files not written by this script: {', '.join(stale)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
