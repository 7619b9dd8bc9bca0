"""The requests the warm worker reads from stdin (worker.py): validation, and the id to refuse
a bad one with."""
import json
import signal

from _damnit_shim.shim_channel import PROTOCOL_VERSION


# What a `stop` request may send to a run's child.
STOP_SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


class RequestError(Exception):
    pass

def parse_request(line):
    try:
        request = json.loads(line)
    except ValueError:
        raise RequestError("request is not JSON: %s" % line[:200])
    if not isinstance(request, dict):
        raise RequestError("request is not an object: %s" % line[:200])
    if request.get("protocol") != PROTOCOL_VERSION:
        raise RequestError("request speaks protocol %r, this worker speaks %d"
                           % (request.get("protocol"), PROTOCOL_VERSION))
    if request.get("kind") == "stop":
        if not (isinstance(request.get("id"), int) and not isinstance(request.get("id"), bool)):
            raise RequestError("request field 'id' is missing or invalid")
        if request.get("signal") not in STOP_SIGNALS:
            raise RequestError("request field 'signal' is missing or invalid")
        return request
    if request.get("kind") != "run":
        raise RequestError("unknown request kind %r" % request.get("kind"))
    checks = {
        "id": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "token": lambda v: isinstance(v, str) and len(v) == 32
        and all(c in "0123456789abcdef" for c in v),
        "cwd": lambda v: isinstance(v, str) and v != "",
        "argv": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
    }
    for field, valid in checks.items():
        if not valid(request.get(field)):
            raise RequestError("request field %r is missing or invalid" % field)
    return request


def request_id(line):
    """The id of a request that failed validation, if it has a usable one."""
    try:
        value = json.loads(line).get("id")
    except Exception:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
