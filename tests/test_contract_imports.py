"""Importing trainfix has no side effects: every module of the package, imported in a fresh process,
leaves the process as it found it (umask, working directory, ``sys.path``, environment, warning
filters, root logger, signal handlers, standard streams and hooks, numpy's error state, torch's
global settings) and replaces no attribute of a module already imported (no monkeypatching of
typer, torch, pandas ... as a by-product of an import).  What a third-party package does when it is
imported is its own business: they are imported before the snapshot is taken.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent('''
    import importlib, json, logging, os, pkgutil, signal, sys, types, warnings

    import numpy, pandas, rich.console, typer.core, torch, yaml
    import pytorch_lightning
    from transformers import TrainerCallback  # materialises transformers' lazy attribute (and accelerate)

    def umask():
        with open("/proc/self/status") as f:
            return next((line.split()[1] for line in f if line.startswith("Umask:")), None)

    def state():
        return {"umask": umask(), "cwd": os.getcwd(), "sys.path": repr(sys.path), "environ": repr(sorted(os.environ.items())),
                "warnings.filters": repr(warnings.filters), "root logger": repr((logging.root.level, logging.root.handlers)),
                "signals": repr([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)]),
                "streams and hooks": repr([id(x) for x in (sys.stdout, sys.stderr, sys.stdin, sys.excepthook, sys.displayhook)]),
                "numpy errstate": repr(numpy.geterr()),
                "torch": repr((torch.get_default_dtype(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                               torch.is_grad_enabled()))}

    before = state()
    third = {n: dict(vars(m)) for n, m in list(sys.modules.items())
             if type(m) is types.ModuleType and n.split(".")[0] not in ("trainfix", "__main__", "__mp_main__")}
    import trainfix
    names = sorted(m.name for m in pkgutil.walk_packages(trainfix.__path__, "trainfix."))
    for name in names:
        importlib.import_module(name)
    after = state()
    changed = [k for k in before if before[k] != after[k]]
    patched = sorted(f"{n}.{k}" for n, old in third.items() if n in sys.modules
                     for k, v in vars(sys.modules[n]).items()
                     if k != "__warningregistry__" and not isinstance(v, types.ModuleType)
                     and (k not in old or old[k] is not v))
    print(json.dumps({"modules": names, "changed": {k: [before[k], after[k]] for k in changed}, "patched": patched}))
''')


def test_importing_every_trainfix_module_changes_nothing_in_the_process():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(got["modules"]) > 100 and "trainfix.cli.app" in got["modules"]  # it really imported the package
    assert got["changed"] == {}
    assert got["patched"] == []
