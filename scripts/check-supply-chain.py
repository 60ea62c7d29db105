#!/usr/bin/env python3
"""Offline supply-chain checks for .ci/run (a second or two; no tool to install).

- Cargo.lock: every package is a workspace member or comes from crates.io with a sha256
  checksum (no git or other registries), and `cargo metadata --locked` agrees with it (a
  manifest change that needs a new lock fails here, as `--locked` builds would).
- Licences: every package the host build can use has a licence expression (SPDX; the old
  `A/B` form read as `A OR B`) satisfied by deny.toml's allow-list, the list
  `cargo deny check licenses` (scripts/supply-chain.sh, by hand) enforces; workspace members
  are Apache-2.0.
- Fetched artifacts: each scripts/fetch-*.sh pins what it downloads (`==version`) and checks
  it with `sha256sum -c` against a 64-hex-digit hash written in the script.

Advisories (RustSec) need the advisory database from the network: scripts/supply-chain.sh
advisories.
"""
import json
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
problems = []

lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
host = re.search(
    r"^host: (\S+)$",
    subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout,
    re.M,
).group(1)
meta = subprocess.run(
    ["cargo", "metadata", "--locked", "--offline", "--format-version", "1",
     "--filter-platform", host],
    cwd=ROOT, capture_output=True, text=True,
)
if meta.returncode != 0:
    sys.exit(f"supply-chain: cargo metadata --locked failed: {meta.stderr.strip()}")
meta = json.loads(meta.stdout)
members = {p["name"] for p in meta["packages"] if p["id"] in meta["workspace_members"]}

for p in lock["package"]:
    name = f'{p["name"]} {p["version"]}'
    source = p.get("source")
    if source is None:
        if p["name"] not in members:
            problems.append(f"Cargo.lock: {name} has no source and is not a workspace member")
    elif source != CRATES_IO:
        problems.append(f"Cargo.lock: {name} comes from {source}, not crates.io")
    elif not re.fullmatch(r"[0-9a-f]{64}", p.get("checksum", "")):
        problems.append(f"Cargo.lock: {name} has no sha256 checksum")

allowed = set(tomllib.loads((ROOT / "deny.toml").read_text())["licenses"]["allow"])


def satisfied(expr: str) -> bool:
    """Whether an SPDX expression holds with the allowed licences true."""
    tokens = re.findall(r"\(|\)|/|[A-Za-z0-9.+-]+(?: WITH [A-Za-z0-9.+-]+)?", expr)
    py = []
    for t in tokens:
        if t in ("(", ")"):
            py.append(t)
        elif t in ("OR", "/"):
            py.append(" or ")
        elif t == "AND":
            py.append(" and ")
        else:
            py.append(str(t in allowed))
    try:
        return bool(eval("".join(py), {"__builtins__": {}}))
    except SyntaxError:
        return False


for p in meta["packages"]:
    name = f'{p["name"]} {p["version"]}'
    lic = p.get("license")
    if p["name"] in members:
        if lic != "Apache-2.0":
            problems.append(f"{name}: workspace member licence {lic!r}, expected Apache-2.0")
    elif not lic:
        problems.append(f"{name}: no SPDX licence expression (license-file only): review it")
    elif not satisfied(lic):
        problems.append(f"{name}: licence {lic!r} is not in deny.toml's allow-list")

for script in sorted((ROOT / "scripts").glob("fetch-*.sh")):
    text = script.read_text()
    if "pip download" not in text:
        continue
    if not re.search(r"==[0-9]", text):
        problems.append(f"{script.name}: downloads without pinning a version (==)")
    hashes = re.findall(r"_sha=\"?([0-9a-f]+)", text)
    if not hashes or any(len(h) != 64 for h in hashes) or "sha256sum -c" not in text:
        problems.append(f"{script.name}: what it downloads is not checked against pinned sha256s")

if problems:
    print("supply-chain: " + "\nsupply-chain: ".join(problems), file=sys.stderr)
    sys.exit(1)
print(
    f"supply-chain: {len(lock['package'])} locked packages from crates.io with checksums; "
    f"{len(meta['packages'])} licences within deny.toml; fetch scripts pinned and sha256-checked",
    file=sys.stderr,
)
