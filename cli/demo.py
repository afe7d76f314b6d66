"""`trainfix demo`: the whole loop on real data in a couple of minutes, on a CPU.

It reproduces a known training failure (``--scenario``: one of the example configs) on
scikit-learn's digits, diagnoses the run, applies the recommended fix to the config (showing the
diff), retrains the patched config, diagnoses again and compares the two runs.  ``DIR/buggy`` and ``DIR/fixed`` are kept (``--out DIR``; default: a fresh
temporary directory whose path is printed), together with ``DIR/buggy.yaml`` and the patched
``DIR/fixed.yaml``.

The stories and the loop itself are :mod:`trainfix.stories`; this module parses the options and
renders what the loop found.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from trainfix.cli.common import command, err, out
from trainfix.errors import UsageError
from trainfix.stories import DEFAULT_SCENARIO, STORIES, LoopResult, Story, repair_loop


@command
def demo_command(
    scenario: Annotated[str, typer.Option("--scenario", help=f"Which failure to reproduce: {', '.join(STORIES)}.")] = DEFAULT_SCENARIO,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Keep the runs here (DIR/buggy, DIR/fixed).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Override run.seed of both runs.")] = None,
) -> None:
    """Reproduce a known training failure on digits, diagnose it, fix the config, retrain and compare (CPU, minutes)."""
    if scenario not in STORIES:
        import difflib

        close = difflib.get_close_matches(scenario, list(STORIES), n=1)
        raise UsageError(f"unknown scenario '{scenario}'" + (f"; did you mean '{close[0]}'?" if close else ""),
                         f"scenarios: {', '.join(STORIES)}")
    story = STORIES[scenario]
    target = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="trainfix-demo-"))
    con = out()
    con.print(f"[bold]trainfix demo[/]: {escape(story.title)} (examples/{escape(story.buggy)})")
    con.print(f"runs go to {escape(str(target))}")
    res = repair_loop(story, target, seed, log=lambda s: err().print(f"[cyan]{escape(s)}[/]"))
    render(con, story, res)
    if res.error:
        raise UsageError(f"the demo could not complete: {res.error}", f"inspect the runs in {target}")


def render(con, story: Story, res: LoopResult) -> None:
    from trainfix.cli.apply import show_diff
    from trainfix.cli.compare import render as render_comparison

    con.print()
    con.print(f"[bold]diagnosis of the buggy run[/]: {', '.join(res.fired) or 'nothing found'}")
    if res.fixes:
        con.print(f"[bold]recommended fixes[/]: {', '.join(res.fixes)}")
        show_diff(con, res.diff)
    if res.comparison:
        con.print()
        render_comparison(res.comparison)
    mark = "[green]repaired[/]" if res.repaired else "[red]not repaired[/]"
    con.print()
    con.print(f"{mark}: {escape(res.target_text)}; {len(res.new_findings)} new warning(s); {res.seconds:.0f} s")
    con.print(f"runs kept: {escape(str(res.out_dir / 'buggy'))} and {escape(str(res.out_dir / 'fixed'))}")
    con.print(f"next: trainfix diagnose {escape(str(res.out_dir / 'buggy'))}")
