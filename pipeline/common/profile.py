"""Switch params.yaml between the profiles (`demo`, `paper`, `quick`): `python -m pipeline.common.profile paper`.

A profile (profiles/<name>.yaml) holds the top-level `lambda_cyc`, whole `cyclegan` and `recyclegan`
groups and single keys of `data` (the crop size), `infer` (compile or not) and `metrics` (how many
frames are described). Switching replaces those keys and groups in params.yaml as text, so comments
and every other group stay as they are. Without an argument, says which profile
params.yaml matches.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from pipeline.common.cli import run_stage
from pipeline.common.errors import FacecycleError
from pipeline.common.files import atomic_file
from pipeline.common.params import GROUPS, load_group, read_yaml

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
PARTIAL_GROUPS = ("data", "infer", "metrics")  # groups of which a profile sets single keys; others it replaces whole


def block_span(lines: list[str], group: str) -> tuple[int, int] | None:
    """Line range [start, end) of top-level `group:` up to the next top-level key, without the
    comments and blank lines that lead into that next key."""
    starts = [i for i, line in enumerate(lines) if re.match(rf"{re.escape(group)}:(\s|$)", line)]
    if not starts:
        return None
    start = starts[0]
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()
                and not lines[i].startswith("#")), len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return start, end


def _scalar(value) -> str:
    """`value` as `dvc exp run -S` writes it, so that neither rewrites the other's lines: null empty,
    a word plain (`flow`), anything else as JSON (a YAML scalar too)."""
    if value is None:
        return ""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def set_key(lines: list[str], group: str, key: str, value) -> None:
    """Set `group.key` in place, keeping the line's indentation and trailing comment."""
    span = block_span(lines, group)
    # at most one space goes with the key, the rest with the comment: an empty value keeps them apart
    pattern = re.compile(rf"^(\s+{re.escape(key)}:[ \t]?)([^#\n]*?)([ \t]*#.*)?$")
    for i in range(*span) if span else ():
        match = pattern.match(lines[i])
        if match:
            lines[i] = match.group(1) + _scalar(value) + (match.group(3) or "")
            return
    raise FacecycleError(f"params.yaml: no key {group}.{key} to set")


def apply_profile(name: str, params_path: str | Path = "params.yaml") -> list[str]:
    """Rewrite the profile's groups of `params_path`; returns the groups and keys it set."""
    profile_path = PROFILES / f"{name}.yaml"
    if not profile_path.exists():
        raise FacecycleError(f"{profile_path}: no such profile (have: {', '.join(available())})")
    profile_lines = profile_path.read_text().splitlines()
    profile = yaml.safe_load(profile_path.read_text())
    params_path = Path(params_path)
    read_yaml(params_path)  # a missing or malformed file fails here, naming it
    lines = params_path.read_text().splitlines()
    changed = []
    for group, values in profile.items():
        if group in PARTIAL_GROUPS:
            for key, value in values.items():
                set_key(lines, group, key, value)
                changed.append(f"{group}.{key}")
            continue
        start, end = block_span(profile_lines, group)
        span = block_span(lines, group)
        if span:
            lines[span[0]:span[1]] = profile_lines[start:end]
        else:
            lines += profile_lines[start:end]
        changed.append(group)
    with atomic_file(params_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
        switched = read_yaml(tmp)
        for group in GROUPS:  # params.yaml changes only if the result validates (top-level keys with the groups)
            if group in switched:
                load_group(group, tmp)
    return changed


def available() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def matching(params_path: str | Path = "params.yaml") -> list[str]:
    """The profiles whose values params.yaml holds."""
    params = read_yaml(params_path)
    found = []
    for name in available():
        profile = yaml.safe_load((PROFILES / f"{name}.yaml").read_text())
        if all(params.get(group) == values if not isinstance(values, dict) else
               all((params.get(group) or {}).get(key) == value for key, value in values.items())
               for group, values in profile.items()):
            found.append(name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.common.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", nargs="?", choices=available(), help="profile to switch to")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    if args.profile:
        changed = apply_profile(args.profile, args.params)
        print(f"{args.params}: profile {args.profile} ({', '.join(changed)})")
    else:
        print(f"{args.params}: profile {' / '.join(matching(args.params)) or 'custom (matches no profile)'}")


if __name__ == "__main__":
    run_stage(main)
