"""Run metadata from myMdC, the facility's metadata catalogue, for `mymdc#` arguments.

    source = make_source(spec, proposal, proposal_path)
    source.field(run, "sample_name")   # also "run_type", "techniques"

Sources (the runner's `--mymdc-source SPEC`):
  (none) or `mymdc`       the facility's myMdC over HTTP, with the proposal's token file
                          <proposal>/usr/mymdc-credentials.yml (YAML: token, server)
  `mymdc:/path/creds.yml` the same with another token file
  `file:/path/runs.json`  a local JSON file {"<run>": {"sample_name": ..., "run_type": ...,
                          "techniques": [...]}}, for offline use and tests
Standard library only; sources are created when a variable first asks for a field.
"""
import json
import os
import urllib.error
import urllib.request

FIELDS = ("sample_name", "run_type", "techniques")
TOKEN_FILE = os.path.join("usr", "mymdc-credentials.yml")


class MymdcError(RuntimeError):
    pass


class FileSource:
    """Metadata from a JSON file mapping run numbers to their fields."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, encoding="utf-8") as f:
                document = json.load(f)
        except (OSError, ValueError) as e:
            raise MymdcError("Cannot read myMdC metadata file %s: %s" % (path, e))
        if not isinstance(document, dict):
            raise MymdcError("myMdC metadata file %s must hold an object {run: fields}" % path)
        self._runs = {str(run).lstrip("r").lstrip("0") or "0": fields
                      for run, fields in document.items()}

    def field(self, run, name):
        fields = self._runs.get(str(run))
        if not isinstance(fields, dict):
            raise MymdcError("No myMdC metadata for run %d in %s" % (run, self.path))
        if name not in fields:
            raise MymdcError("No myMdC field %r for run %d in %s" % (name, run, self.path))
        return fields[name]


def _read_credentials(path):
    """token and server from the credentials file (flat YAML `key: value` lines)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise MymdcError("myMdC needs a token: cannot read %s (%s). Ask the DA group for a "
                         "myMdC token for this proposal." % (path, e.strerror or e))
    values = {}
    try:
        import yaml
        document = yaml.safe_load(text)
        if isinstance(document, dict):
            values = document
    except ImportError:
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                values[key.strip()] = value.strip().strip("'\"")
    if not values.get("token") or not values.get("server"):
        raise MymdcError("%s must give both 'token' and 'server'" % path)
    return str(values["token"]), str(values["server"]).rstrip("/")


class HttpSource:
    """The facility's myMdC REST API, as the reference's client uses it."""

    def __init__(self, proposal, credentials_path, timeout=10):
        self.proposal = proposal
        self.timeout = timeout
        self.token, self.server = _read_credentials(credentials_path)
        self._cache = {}

    def _get(self, path):
        if path not in self._cache:
            request = urllib.request.Request(self.server + path, headers={
                "X-API-key": self.token, "Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    self._cache[path] = json.loads(response.read().decode("utf-8"))
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise MymdcError("myMdC request %s failed: %s" % (path, e))
        return self._cache[path]

    def _run_info(self, run):
        runs = self._get("/api/mymdc/proposals/by_number/%d/runs/%d" % (self.proposal, run)).get("runs")
        if not runs:
            raise MymdcError("Couldn't get run information from mymdc for p%d, r%d"
                             % (self.proposal, run))
        return runs[0]

    def field(self, run, name):
        info = self._run_info(run)
        if name == "sample_name":
            return self._get("/api/mymdc/samples/%s" % info["sample_id"])["name"]
        if name == "run_type":
            return self._get("/api/mymdc/experiments/%s" % info["experiment_id"])["name"]
        if name == "techniques":
            return self._get("/api/mymdc/runs/%s" % info["id"])["techniques"]
        raise MymdcError("Unknown myMdC field %r" % name)


SPEC_HELP = "use mymdc, mymdc:CREDENTIALS_FILE or file:JSON_FILE"


def valid_spec(spec):
    return spec in ("", "mymdc") or spec.startswith(("mymdc:", "file:"))


def make_source(spec, proposal, proposal_path):
    if spec.startswith("file:"):
        return FileSource(spec[len("file:"):])
    if spec in ("", "mymdc"):
        return HttpSource(proposal, os.path.join(str(proposal_path), TOKEN_FILE))
    if spec.startswith("mymdc:"):
        return HttpSource(proposal, spec[len("mymdc:"):])
    raise MymdcError("Unknown myMdC source %r (%s)" % (spec, SPEC_HELP))
