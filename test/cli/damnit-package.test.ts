// `from damnit.context import ...` in a context run by us, where DAMNIT's own package is installed
// in the context_python (a stand-in of its shape: fixtures/damnit-package): the context gets the
// backend's classes, and the package's own API keeps working, in the run and on its own.
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { FIXTURES_DIR, TEST_PYTHON } from '../helpers/paths.js';
import { makeProposal, rows, valueOf } from '../helpers/proposal.js';

const tmp = makeTempDir('damnit-package-');
after(() => tmp.cleanup());

const CONTEXT = `
from damnit.context import Cell, ContextFile, Group, Variable, describe_cell
import damnit
import damnit.context
import damnit_ctx


@Variable(title="Backend's classes")
def classes(run):
    # The context's Variable is the backend's damnit_ctx's, not the package's own copy.
    same = damnit.context.Variable is damnit_ctx.Variable is Variable
    return "%s %s" % (same, damnit_ctx.__file__)


@Variable(title="Titles via the API")
def api(run, path: "meta#proposal_path"):
    return len(damnit.Damnit(path / "usr" / "Shared" / "amore").titles())


@Variable(title="Package helper")
def helper(run):
    return describe_cell(Cell([1.0, 2.0]))


@Variable(title="Package ContextFile")
def context_file(run):
    ctx = ContextFile.from_str("from damnit_ctx import Variable\\n@Variable\\ndef x(run):\\n    return 41\\n")
    return ctx.execute(run)["x"].data + 1


@Group
class Twice:
    @Variable(title="Twice")
    def value(self, run, n: "meta#run_number"):
        return 2 * n


twice = Twice()
`;

describe('a context importing damnit.context where DAMNIT is installed', () => {
  let db: string;
  let venvPython: string;
  before(async () => {
    ({ db } = await makeProposal(path.join(tmp.dir, 'p1234'), 1, CONTEXT));
    const venv = path.join(tmp.dir, 'venv');
    await execa(TEST_PYTHON, ['-m', 'venv', '--system-site-packages', '--without-pip', venv]);
    venvPython = path.join(venv, 'bin', 'python');
    const { stdout: sitePackages } = await execa(venvPython, ['-c', "import sysconfig; print(sysconfig.get_paths()['purelib'])"]);
    cpSync(path.join(FIXTURES_DIR, 'damnit-package', 'damnit'), path.join(sitePackages.trim(), 'damnit'), {
      recursive: true,
    });
    assert.equal((await runCli(['db-config', 'context_python', venvPython], { cwd: db })).code, 0);
  });

  test('loads and runs with the backend classes; the package API works inside the variables', async () => {
    const read = await runCli(['read-context'], { cwd: db });
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, /^Read 5 variables from context\.py/);
    const res = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    const classes = String(valueOf(db, 1, 'classes'));
    assert.match(classes, /^True .*python-shim[/\\]damnit_ctx\.py$/);
    assert.equal(valueOf(db, 1, 'api'), 5);
    // The package's helper imports a name of damnit_ctx the backend's does not define: it comes
    // from the package's own copy.
    assert.equal(valueOf(db, 1, 'helper'), 'list');
    assert.equal(valueOf(db, 1, 'context_file'), 42);
    assert.equal(valueOf(db, 1, 'twice.value'), 2);
    assert.ok(rows(db).every((r) => r.attributes === null || !r.attributes.includes('error')), JSON.stringify(rows(db)));
  });

  test('the package is unchanged for everything else in that Python', async () => {
    const { stdout } = await execa(venvPython, [
      '-c',
      'import damnit\n' +
        'from damnit.context import ContextFile\n' +
        'import damnit_ctx\n' +
        'ctx = ContextFile.from_str("from damnit_ctx import Variable\\n@Variable\\ndef y(run):\\n    return 5\\n")\n' +
        'print(damnit_ctx.PACKAGE_OWN_COPY, sorted(ctx.vars), ctx.execute(None)["y"].data, damnit.Damnit(".").__class__.__name__)',
    ]);
    assert.equal(stdout, "True ['y'] 5 Damnit");
  });
});
