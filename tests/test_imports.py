"""predictors/ is the host-independent core: it must import and work where ComfyUI is absent."""
import subprocess
import sys
import textwrap

from conftest import ROOT


def test_predictors_import_without_comfyui():
    # A fresh interpreter in which any attempt to import the host fails loudly.
    code = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class NoHost(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('comfy', 'comfy_api', 'comfy_extras', 'folder_paths', 'nodes', 'server'):
                    raise ImportError('host module imported: ' + name)
                return None
        sys.meta_path.insert(0, NoHost())
        sys.path.insert(0, {str(ROOT)!r})
        import pkgutil, importlib, predictors
        names = [m.name for m in pkgutil.walk_packages(predictors.__path__, 'predictors.')]
        for n in names:
            importlib.import_module(n)
        print(len(names))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 25  # every module of every sub-package
