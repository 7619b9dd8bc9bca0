"""The arguments of `run` (runner.py), checked before anything runs."""
import argparse

from _damnit_shim import memory_limit, mymdc


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


_parser = None


def parse_args(argv):
    global _parser
    # Built once: a warm worker's children inherit it.
    if _parser is None:
        _parser = _make_parser()
    args = _parser.parse_args(argv)
    if not mymdc.valid_spec(args.mymdc_source):
        raise UsageError("--mymdc-source: %s" % mymdc.SPEC_HELP)
    try:
        memory_limit.parse(args.memory_limit)
    except ValueError:
        raise UsageError("--memory-limit: 'auto' or a number of GB, not %r" % args.memory_limit)
    return args


def _make_parser():
    parser = _Parser(prog="damnit_shim.py run", add_help=False)
    parser.add_argument("context_file")
    parser.add_argument("--proposal", type=int, required=True)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--run-data", choices=("raw", "proc", "all"), required=True)
    parser.add_argument("--proposal-path", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mock", action="store_true")
    parser.add_argument("--match", action="append", default=[])
    parser.add_argument("--cluster", choices=("include", "exclude", "only"), default="include")
    parser.add_argument("--mymdc-source", default="mymdc")
    parser.add_argument("--memory-limit", default="0", help="auto, or GB (0: none)")
    return parser
