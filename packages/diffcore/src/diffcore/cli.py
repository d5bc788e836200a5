"""The ``diffcore`` command: ``list | serve [DOMAIN] | bench NAME | train DOMAIN | smoke [DOMAIN…]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffcore.cli_errors import run_command
from diffcore.errors import InvalidInputError, UnknownNameError
from diffcore.hub import add_serve_args

DEFAULT_RESULTS = Path("docs/results")


def _list(_: argparse.Namespace) -> int:
    from diffcore.plugins import discover

    for name, entry in discover().items():
        dom = entry.load()
        benches = ", ".join(dom.benchmarks) or "-"
        print(f"{name:<10} {dom.title}  [{dom.paper}]  benchmarks: {benches}")
    return 0


def _serve(a: argparse.Namespace) -> int:
    from diffcore.hub import launch

    launch(domain=a.domain, host=a.host, port=a.port)
    return 0


def _bench(a: argparse.Namespace) -> int:
    """Run one benchmark, telling it the command line (the report prints it, so a reader can rerun it)."""
    import shlex

    from diffcore.plugins import find_benchmark

    _, run = find_benchmark(a.name)
    typed = ["diffcore", "bench", a.name, *(["--quick"] if a.quick else [])]
    typed += ["--out", str(a.out)] if a.out != DEFAULT_RESULTS else []
    report = run(a.out, quick=a.quick, command=shlex.join(typed))
    print(f"wrote {report}")
    return 0


def _train(a: argparse.Namespace) -> int:
    from diffcore.plugins import get_domain

    get_domain(a.domain).run_train(a.args)
    return 0


def _smoke(a: argparse.Namespace) -> int:
    """Load each chosen domain's shipped model and run its smoke inputs (what CI runs per installed package)."""
    import time

    from diffcore.plugins import discover

    if a.domains and a.package:
        raise InvalidInputError("name domains or --package, not both")
    found = discover(a.package)
    for name in a.domains:
        if name not in found:
            raise UnknownNameError(f"no installed domain {name!r}; installed: {', '.join(found) or 'none'}")
    for name in a.domains or list(found):
        dom = found[name].load()
        t0 = time.perf_counter()
        numbers = dom.run_smoke(dom.load_model(device=a.device))
        shown = ", ".join(f"{k}={v:.4g}" for k, v in numbers.items())
        print(f"{name:<10} ok in {time.perf_counter() - t0:.1f} s: {shown}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="diffcore", description="diffsuite core: list, serve, benchmark and train domains")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="installed domains").set_defaults(fn=_list)
    s = sub.add_parser("serve", help="the hub, or one domain's app")
    add_serve_args(s)
    s.set_defaults(fn=_serve)
    b = sub.add_parser("bench", help="run a benchmark, write docs/results/NAME.{md,json,png}")
    b.add_argument("name")
    b.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    b.add_argument("--quick", action="store_true", help="fewer repeats and inputs (a smoke run, not for reports)")
    b.set_defaults(fn=_bench)
    t = sub.add_parser("train", help="retrain a domain's shipped weights; extra args go to the domain")
    t.add_argument("domain")
    t.add_argument("args", nargs=argparse.REMAINDER)
    t.set_defaults(fn=_train)
    m = sub.add_parser("smoke", help="load domains' shipped models and run their smoke inputs (all installed by default)")
    m.add_argument("domains", nargs="*", metavar="DOMAIN")
    m.add_argument("--package", default=None, help="only the domains this installed distribution registers")
    m.add_argument("--device", default="cpu")
    m.set_defaults(fn=_smoke)
    a = p.parse_args(argv)
    return run_command("diffcore", lambda: a.fn(a))


if __name__ == "__main__":
    raise SystemExit(main())
