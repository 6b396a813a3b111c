"""Write web/input_scopes.json from nodes/input_scopes.py: which inputs the pack's frontend extension hides.

    python3 scripts/make_input_scopes.py          # rewrite the file
    python3 scripts/make_input_scopes.py --check  # exit 1 when the file differs from the table (tests run this)

The JSON is generated, never edited: the table in nodes/input_scopes.py is the one source of the rules.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (the pack as comfyui_l2p, without ComfyUI)
from comfyui_l2p.nodes.input_scopes import JSON_NAME, WEB_FOLDER, scopes_json  # noqa: E402

TARGET = ROOT / WEB_FOLDER / JSON_NAME


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 scripts/make_input_scopes.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is stale")
    args = parser.parse_args(argv)
    wanted = scopes_json()
    if args.check:
        found = TARGET.read_text() if TARGET.is_file() else None
        if found != wanted:
            print(f"{TARGET} does not match nodes/input_scopes.py: run python3 scripts/make_input_scopes.py")
            return 1
        print(f"{TARGET} matches nodes/input_scopes.py")
        return 0
    TARGET.write_text(wanted)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
