"""Which ComfyUI checkouts .ci/run tests the pack against: one path per line on stdout; a one-line reason on stderr
when there are none (exit 0) or when a named one is not a checkout (exit 2).

Where they come from, in this order:
1. ``COMFYUI_PATH``: one checkout, or several separated by ``os.pathsep`` (":" on Linux and macOS); every entry
   must be a checkout, since someone named it;
2. otherwise the default location next to the repository, ``<repo>/../comfyui-hosts/*/`` (e.g.
   ~/src/comfyui-hosts/ beside ~/src/ComfyUI-L2P): every sub-folder that is a ComfyUI checkout, oldest version
   first.

    python3 scripts/ci_hosts.py
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "COMFYUI_PATH"
DEFAULT_DIR = ROOT.parent / "comfyui-hosts"
MARKERS = ("nodes.py", "comfy/model_base.py")  # what makes a folder a ComfyUI checkout


class NotACheckout(ValueError):
    pass


def is_checkout(path: Path) -> bool:
    return all((path / marker).is_file() for marker in MARKERS)


def version_key(path: Path) -> tuple:
    """Sort key: the numbers of comfyui_version.py's version (unknown sorts last), then the path."""
    try:
        text = (path / "comfyui_version.py").read_text(encoding="utf-8")
        match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
    except OSError:
        match = None
    numbers = tuple(int(n) for n in re.findall(r"\d+", match.group(1))) if match else (sys.maxsize,)
    return numbers, str(path)


def find_hosts(env_value: str | None, default_dir: Path = DEFAULT_DIR) -> tuple[list[Path], str]:
    """(checkouts, where they were looked for). Raises NotACheckout for a COMFYUI_PATH entry that is not one."""
    if env_value and env_value.strip():
        hosts = []
        for entry in (e.strip() for e in env_value.split(os.pathsep)):
            if not entry:
                continue
            path = Path(entry).expanduser().resolve()
            if not is_checkout(path):
                raise NotACheckout(f"{ENV_VAR} names {path}, which is not a ComfyUI checkout (expected "
                                   f"{' and '.join(MARKERS)} there)")
            hosts.append(path)
        return hosts, ENV_VAR
    found = [p.resolve() for p in sorted(default_dir.glob("*/")) if is_checkout(p)] if default_dir.is_dir() else []
    return sorted(found, key=version_key), f"{default_dir}/*/ ({ENV_VAR} unset)"


def main() -> int:
    try:
        hosts, where = find_hosts(os.environ.get(ENV_VAR))
    except NotACheckout as error:
        print(f"ci: {error}", file=sys.stderr)
        return 2
    if not hosts:
        print(f"ci: no ComfyUI checkout found in {where}: the real-ComfyUI tests ran only as skips", file=sys.stderr)
    for host in hosts:
        print(host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
