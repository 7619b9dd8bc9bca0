// Pipeline from Python, as a notebook uses it in the interpreter that runs the context: each
// scenario of the reference's tests/test_pipeline.py (the Python function of the same name below
// mirrors it), run in one interpreter, then the guide's Pipeline examples on a sample run.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir } from '../helpers/cli.js';
import { makeSampleProposal, pythonJson } from '../helpers/python.js';
import { result, runOk, writeContext } from './runner-helpers.js';

const tmp = makeTempDir('damnit-pipeline-');
after(() => tmp.cleanup());

const SCENARIOS = String.raw`
import json, logging, re, sys
from textwrap import dedent
from damnit_ctx import Group, GroupError, Pipeline, RunData, Variable
from _damnit_shim.mock_run import mock_run

def test_pipeline_execute_with_data():
    @Variable
    def a(run):
        return 1

    @Variable(data="proc")
    def b(run):
        return 2

    pipe = Pipeline().add(a, b)
    res = pipe.with_context(data=mock_run(), proposal=123, run_number=1).select(run_data="raw").execute()
    return sorted(res.cells), int(res.cells["a"].data)

def test_pipeline_execute_data_override():
    override = {}

    @Variable
    def used_override(run, _override=override):
        return run is _override

    pipe = Pipeline().add(used_override)
    res = pipe.with_context(data=mock_run(), proposal=1, run_number=1).execute(data=override)
    return bool(res.cells["used_override"].data)

def test_pipeline_default_merges_autodiscovery():
    code = dedent('''
        from damnit_ctx import Variable, Group, Pipeline

        @Variable
        def base(run):
            return 1

        @Group
        class G:
            @Variable
            def val(self, run):
                return 2

        g = G()
        Pipeline.default().add(G(name="extra"))
    ''')
    return sorted(Pipeline.from_str(code).context.vars)

def test_pipeline_set_default_override():
    code = dedent('''
        from damnit_ctx import Variable, Pipeline

        @Variable
        def base(run):
            return 1

        @Variable
        def chosen(run):
            return 2

        pipe = Pipeline()
        pipe.add(chosen)
        Pipeline.set_default(pipe)
    ''')
    return sorted(Pipeline.from_str(code).context.vars)

def test_pipeline_from_context_file():
    path = sys.argv[1] + "/from_file.py"
    with open(path, "w") as f:
        f.write("from damnit_ctx import Variable\n\n@Variable\ndef foo(run):\n    return 7\n")
    pipe = Pipeline.from_context_file(path)
    res = pipe.with_context(data=mock_run(), proposal=1, run_number=1).execute()
    return int(res.cells["foo"].data)

def test_pipeline_nested_context_isolation():
    outer_code = dedent('''
        from damnit_ctx import Variable, Pipeline
        from damnit.context import Pipeline as PipelinePublic

        @Variable
        def outer(run):
            return 1

        inner_code = """
        from damnit_ctx import Variable, Pipeline

        @Variable
        def inner(run):
            return 2

        pipe = Pipeline()
        pipe.add(inner)
        Pipeline.set_default(pipe)
        """

        PipelinePublic.from_str(inner_code)
        Pipeline.default().add(outer)
    ''')
    return sorted(Pipeline.from_str(outer_code).vars)

def test_pipeline_state_reset_after_exception():
    failing_code = dedent('''
        from damnit_ctx import Variable, Pipeline

        @Variable
        def bad(run):
            return 1

        Pipeline.default().add(bad)
        raise RuntimeError("boom")
    ''')
    try:
        Pipeline.from_str(failing_code)
        raised = None
    except RuntimeError as e:
        raised = str(e)
    return raised, sorted(Pipeline.default().vars)

def test_pipeline_sequential_contexts_no_leak():
    template = dedent('''
        from damnit_ctx import Variable, Pipeline

        @Variable
        def NAME(run):
            return 1

        pipe = Pipeline()
        pipe.add(NAME)
        Pipeline.set_default(pipe)
    ''')
    pipe_a = Pipeline.from_str(template.replace("NAME", "a"))
    pipe_b = Pipeline.from_str(template.replace("NAME", "b"))
    return sorted(pipe_a.vars), sorted(pipe_b.vars)

def test_pipeline_add_accepts_nested_sequences_and_rejects_invalid_iterables():
    @Variable
    def a(run):
        return 1

    @Variable
    def b(run):
        return 2

    refused = []
    for bad in (123, (x for x in [a])):
        try:
            Pipeline().add(bad)
        except TypeError as e:
            refused.append(str(e))
    return sorted(Pipeline().add([a, (b,)]).vars), refused

def test_pipeline_add_accepts_group_mapping():
    @Group
    class G:
        @Variable
        def val(self, run):
            return 1

    g = G()
    pipe = Pipeline().add({"grp": g})
    first = (g.name, sorted(pipe.vars))
    g = G(name="left")
    pipe.add({"right": g})
    return first, (g.name, sorted(pipe.vars))

def test_pipeline_add_rejects_string():
    try:
        Pipeline().add("not-a-variable")
    except TypeError as e:
        return str(e)

def test_pipeline_add_invalidates_compiled_context():
    @Variable
    def a(run):
        return 1

    @Variable
    def b(run):
        return 2

    pipe = Pipeline().add(a)
    before = sorted(pipe.vars)
    pipe.add(b)
    return before, sorted(pipe.vars)

def test_pipeline_build_context_invalidates_results():
    @Variable
    def a(run):
        return 1

    @Variable
    def b(run):
        return 2

    pipe = Pipeline().add(a).with_context(data=mock_run(), proposal=1, run_number=1)
    pipe.execute()
    had = pipe.results is not None
    pipe.add(b)
    return had, pipe.results is None

def test_pipeline_set_default_rejects_non_pipeline():
    try:
        Pipeline.set_default("not a pipeline")
    except TypeError as e:
        return str(e)

def test_pipeline_build_context_rejects_duplicate_variable_names():
    def f(run):
        return 1

    try:
        Pipeline().add(Variable(f), Variable(f))
    except GroupError as e:
        return str(e)

def test_pipeline_union_disjoint():
    @Variable
    def a(run):
        return 1

    @Variable
    def b(run):
        return 2

    left = Pipeline().add(a)
    right = Pipeline().add(b)
    merged = left.union(right)
    return sorted(merged.vars), sorted(left.vars), sorted(right.vars)

def test_pipeline_union_deduplicates_same_object():
    @Variable
    def a(run):
        return 1

    left = Pipeline().add(a)
    right = Pipeline().add(a)
    merged = left.union(right)
    return sorted(merged.vars), merged.vars["a"] is left.vars["a"] is right.vars["a"]

def test_pipeline_union_conflicts():
    code = "from damnit_ctx import Variable\n\n@Variable\ndef a(run):\n    return 1\n"
    left = Pipeline.from_str(code)
    right = Pipeline.from_str(code)
    try:
        left.union(right)
        error = None
    except Exception as e:
        error = str(e)
    return (error, left.union(right, on_conflict="left").vars["a"] is left.vars["a"],
            left.union(right, on_conflict="right").vars["a"] is right.vars["a"])

def test_pipeline_build_context_rejects_unnamed_group_instance():
    @Group
    class G:
        @Variable
        def val(self, run):
            return 1

    try:
        Pipeline().add(G())
    except GroupError as e:
        return str(e)

def test_pipeline_build_context_rejects_duplicate_group_names():
    @Group
    class G:
        @Variable
        def val(self, run):
            return 1

    try:
        Pipeline().add(G(name="same"), G(name="same"))
    except GroupError as e:
        return str(e)

def test_pipeline_with_context_updates():
    param_values = {"x": 1}
    data_obj = object()
    pipe = Pipeline(name="a", proposal=1, run_number=2, data=data_obj, param_values=param_values)
    new_pipe = pipe.with_context(name="b", proposal=3, param_values={"y": 2})
    param_values["x"] = 999
    return ([pipe.name, pipe.proposal, pipe.run_number, pipe.data is data_obj, pipe.param_values],
            [new_pipe.name, new_pipe.proposal, new_pipe.run_number, new_pipe.data is data_obj,
             new_pipe.param_values])

def test_pipeline_select_filters():
    code = dedent('''
        from damnit_ctx import Variable

        @Variable(title="Alpha", data="raw")
        def a(run):
            return 1

        @Variable(title="Beta", data="proc", cluster=True)
        def b(run):
            return 2

        @Variable(title="Gamma", data="raw")
        def c(run, x: "var#a"):
            return x + 1
    ''')
    pipe = Pipeline.from_str(code)
    return {"only_c": sorted(pipe.select(variables=("c",)).vars),
            "by_match": sorted(pipe.select(match=("beta",)).vars),
            "clustered": sorted(pipe.select(cluster=True).vars),
            "raw_only": sorted(pipe.select(run_data="raw").vars)}

def test_pipeline_select_then_add_does_not_resurrect_filtered_vars():
    @Variable
    def a(run):
        return 1

    @Variable
    def b(run):
        return 2

    @Variable
    def c(run):
        return 3

    selected = Pipeline().add(a, b).select(variables=("a",))
    first = sorted(selected.vars)
    selected.add(c)
    return first, sorted(selected.vars)

def test_pipeline_select_run_data_overrides_execution():
    @Variable(data="raw")
    def raw_var(run):
        return 1

    @Variable(data="proc")
    def proc_var(run):
        return 2

    selected = Pipeline().add(raw_var, proc_var).select(run_data="raw")
    res = selected.with_context(data=mock_run(), proposal=1, run_number=1).execute()
    return sorted(res.cells)

def test_pipeline_execute_requires_data_or_proposal_run_number():
    @Variable
    def a(run):
        return 1

    try:
        Pipeline().add(a).execute()
    except ValueError as e:
        return str(e)

def test_pipeline_execute():
    code = "from damnit_ctx import Variable\n\n@Variable\ndef val(run, x: 'param#x'):\n    return x\n"
    pipe = Pipeline.from_str(code).with_context(data=mock_run(), proposal=1, run_number=1,
                                                param_values={"x": 1})
    before = pipe.results
    res = pipe.execute(param_values={"x": 2})
    return before is None, int(res.cells["val"].data)

def test_pipeline_execute_logs_name():
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("ctxrunner")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    @Variable
    def inner(run):
        return 1

    @Variable
    def outer(run):
        nested = Pipeline(name="inner_pipe", proposal=1, run_number=2, data=run)
        nested.add(inner)
        return nested.execute().cells["inner"].data + 1

    Pipeline(name="outer_pipe").add(outer).with_context(data=mock_run(), proposal=1, run_number=1).execute()

    @Variable
    def val(run):
        return 1

    Pipeline().add(val).with_context(data=mock_run(), proposal=1, run_number=1).execute()
    logger.removeHandler(handler)
    text = "\n".join(records)
    return ("[inner_pipe] Computed inner" in text, "[outer_pipe] Computed outer" in text,
            len(re.findall(r"\[\w{12}\] Computed val", text)))

def test_pipeline_vars_to_dict():
    code = dedent('''
        from damnit_ctx import Variable

        @Variable
        def keep(run):
            return 1

        @Variable(transient=True)
        def transient_var(run):
            return 2
    ''')
    pipe = Pipeline.from_str(code)
    return sorted(pipe.vars_to_dict()), sorted(pipe.vars_to_dict(inc_transient=True))

def test_pipeline_copy():
    @Variable
    def a(run):
        return 1

    @Variable
    def b(run):
        return 2

    pipe = Pipeline(param_values={"x": 1}).add(a)
    clone = pipe.copy()
    clone.param_values["x"] = 2
    clone.param_values["y"] = 3
    clone.add(b)
    return pipe.param_values, clone.param_values, sorted(pipe.vars), sorted(clone.vars)

def test_reuse_vars():
    code = dedent('''
        from damnit_ctx import Variable, Group, Pipeline

        @Group
        class A:
            value: int = 1

            @Variable
            def var(self, run):
                return self.value * run['data']

        @Variable
        def source(run):
            pipe = Pipeline(proposal=1, run_number=2, data={'data': 10})
            pipe.add(A(value=2, name='aa'))
            pipe.execute()
            return pipe.results.cells['aa.var'].data

        @Variable
        def target(run, data: 'var#source', run_number: 'meta#run_number'):
            return data + run_number
    ''')
    ctx = Pipeline.from_str(code).context
    res = ctx.execute(mock_run(), 1, 1, {})
    return sorted(ctx.vars), int(res.cells["source"].data), int(res.cells["target"].data)

print(json.dumps({name: fn() for name, fn in list(globals().items())
                  if name.startswith("test_") and callable(fn)}))
`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
let outcomes: Record<string, any>;

before(async () => {
  outcomes = await pythonJson(SCENARIOS, [tmp.dir]);
});

/** What the Python function of that name returned (its name is the reference test's). */
function outcome(name: string): unknown {
  assert.ok(name in outcomes, `no scenario ${name}`);
  return outcomes[name];
}

describe('Pipeline: the scenarios of the reference tests', () => {
  const expected: [string, unknown][] = [
    ['test_pipeline_execute_with_data', [['a', 'start_time'], 1]],
    ['test_pipeline_execute_data_override', true],
    ['test_pipeline_default_merges_autodiscovery', ['base', 'extra.val', 'g.val']],
    ['test_pipeline_set_default_override', ['chosen']],
    ['test_pipeline_from_context_file', 7],
    ['test_pipeline_nested_context_isolation', ['outer']],
    ['test_pipeline_state_reset_after_exception', ['boom', []]],
    ['test_pipeline_sequential_contexts_no_leak', [['a'], ['b']]],
    [
      'test_pipeline_add_accepts_nested_sequences_and_rejects_invalid_iterables',
      [
        ['a', 'b'],
        [
          "Pipeline.add accepts Variable or Group instances (or dict[str, Group], or sequences of them); got <class 'int'>",
          "Pipeline.add accepts Variable or Group instances (or dict[str, Group], or sequences of them); got <class 'generator'>",
        ],
      ],
    ],
    ['test_pipeline_add_accepts_group_mapping', [['grp', ['grp.val']], ['left', ['grp.val', 'left.val']]]],
    [
      'test_pipeline_add_rejects_string',
      "Pipeline.add accepts Variable or Group instances (or dict[str, Group], or sequences of them); got <class 'str'>",
    ],
    ['test_pipeline_add_invalidates_compiled_context', [['a'], ['a', 'b']]],
    ['test_pipeline_build_context_invalidates_results', [true, true]],
    ['test_pipeline_set_default_rejects_non_pipeline', 'Pipeline.set_default expects a Pipeline instance'],
    ['test_pipeline_build_context_rejects_duplicate_variable_names', "Duplicate variable name 'f'"],
    ['test_pipeline_union_disjoint', [['a', 'b'], ['a'], ['b']]],
    ['test_pipeline_union_deduplicates_same_object', [['a'], true]],
    ['test_pipeline_union_conflicts', ["Duplicate variable name 'a'", true, true]],
    [
      'test_pipeline_build_context_rejects_unnamed_group_instance',
      "Group instance of 'G' has no name. Provide name=... or assign it to a variable in the context file.",
    ],
    [
      'test_pipeline_build_context_rejects_duplicate_group_names',
      "Group name 'same' is used by multiple group instances",
    ],
    [
      'test_pipeline_with_context_updates',
      [
        ['a', 1, 2, true, { x: 1 }],
        ['b', 3, 2, true, { y: 2 }],
      ],
    ],
    [
      'test_pipeline_select_filters',
      { only_c: ['a', 'c'], by_match: ['b'], clustered: ['b'], raw_only: ['a', 'c'] },
    ],
    ['test_pipeline_select_then_add_does_not_resurrect_filtered_vars', [['a'], ['a', 'c']]],
    ['test_pipeline_select_run_data_overrides_execution', ['raw_var', 'start_time']],
    ['test_pipeline_execute_requires_data_or_proposal_run_number', 'proposal and run_number must be set'],
    ['test_pipeline_execute', [true, 2]],
    ['test_pipeline_execute_logs_name', [true, true, 1]],
    ['test_pipeline_vars_to_dict', [['keep'], ['keep', 'transient_var']]],
    ['test_pipeline_copy', [{ x: 1 }, { x: 2, y: 3 }, ['a'], ['a', 'b']]],
    ['test_reuse_vars', [['source', 'target'], 20, 21]],
  ];
  for (const [name, value] of expected) {
    // Mirrors the reference's test of the same name.
    test(name, () => {
      assert.deepEqual(outcome(name), value);
    });
  }
  test('every scenario has its test', () => {
    assert.deepEqual(Object.keys(outcomes).sort(), expected.map(([name]) => name).sort());
  });
});

// The guide's Pipeline examples that are not context files: a notebook, on a real run.
const GUIDE_NOTEBOOK = String.raw`
import json, sys
import numpy as np
# Where DAMNIT's own package is not installed, importing damnit_ctx makes damnit.context ours.
import damnit_ctx  # noqa: F401
from damnit.context import Group, Pipeline, Variable
from _damnit_shim import xd_compat

proposal_path, context_a, context_b = sys.argv[1:4]
run = xd_compat.open_run(proposal_path, 2, "raw")

# Common usage with a context file: run a subset by title match
pipe = Pipeline.from_context_file(context_a)
res = (pipe.with_context(proposal=1234, run_number=2)
           .select(match=["XGM"], run_data="raw")
           .execute(data=run))
xgm = run["SA2_XTD1_XGM/XGM/DOOCS", "pulseEnergy.photonFlux"].ndarray()

# Develop directly in Python without a context file
@Variable
def my_var(run):
    return 123

@Group
class Demo:
    @Variable
    def val(self, run):
        return 456

dev = Pipeline()
dev.add(my_var, Demo(name="demo"))
dev_res = dev.with_context(proposal=1234, run_number=2).execute(data=run)

# Merging pipelines, preferring the left one's variables
merged = Pipeline.from_context_file(context_a).union(Pipeline.from_context_file(context_b),
                                                    on_conflict="left")
print(json.dumps({
    "all": sorted(pipe.vars),
    "selected": sorted(n for n in res.cells if n != "start_time"),
    "corrected": float(np.mean(res.cells["xgm_sa2.corrected_energy"].data)),
    "expected": float(np.mean(xgm) + 1.1),
    "dev": sorted(dev.vars),
    "dev_values": [int(dev_res.cells["my_var"].data), int(dev_res.cells["demo.val"].data)],
    "merged": sorted(merged.vars),
    "merged_title": merged.vars["a"].title,
}))
`;

describe("Pipeline: the guide's examples in a notebook", () => {
  test('from_context_file, select(match=...), execute(data=run), add, union', async () => {
    const proposal = path.join(tmp.dir, 'p1234');
    await makeSampleProposal(proposal, ['--runs', '2', '--trains', '20']);
    const contextA = path.join(tmp.dir, 'context_a.py');
    writeFileSync(
      contextA,
      'from damnit_ctx import Group, Variable\n\n' +
        '@Variable(title="A")\ndef a(run):\n    return 1\n\n' +
        '@Group(tags=["XGM"])\nclass XGMDiagnostics:\n    device_name: str\n    offset: float = 0.0\n\n' +
        '    @Variable(title="Pulse Energy", summary="mean")\n    def pulse_energy(self, run):\n' +
        '        return run[self.device_name, "pulseEnergy.photonFlux"].xarray()\n\n' +
        '    @Variable(title="Corrected Energy", summary="mean")\n' +
        '    def corrected_energy(self, run, energy: "self#pulse_energy"):\n        return energy + self.offset\n\n' +
        'xgm_sa2 = XGMDiagnostics(title="XGM SA2", device_name="SA2_XTD1_XGM/XGM/DOOCS", offset=1.1)\n',
    );
    const contextB = path.join(tmp.dir, 'context_b.py');
    writeFileSync(contextB, 'from damnit_ctx import Variable\n\n@Variable(title="A from b")\ndef a(run):\n    return 2\n\n@Variable\ndef b(run):\n    return 3\n');
    const got = await pythonJson<Record<string, unknown>>(GUIDE_NOTEBOOK, [proposal, contextA, contextB]);
    assert.deepEqual(got.all, ['a', 'xgm_sa2.corrected_energy', 'xgm_sa2.pulse_energy']);
    assert.deepEqual(got.selected, ['xgm_sa2.corrected_energy', 'xgm_sa2.pulse_energy']);
    // The energies are float32: equal to their precision.
    const [corrected, expected] = [got.corrected as number, got.expected as number];
    assert.ok(Math.abs(corrected - expected) < 1e-6 * expected, JSON.stringify(got));
    assert.deepEqual(got.dev, ['demo.val', 'my_var']);
    assert.deepEqual(got.dev_values, [123, 456]);
    assert.deepEqual(got.merged, ['a', 'b', 'xgm_sa2.corrected_energy', 'xgm_sa2.pulse_energy']);
    assert.equal(got.merged_title, 'A');
  });
});

describe('param# in the backend, which has no parameter values', () => {
  test("the default is used; without one the variable is skipped with the reference's log line, nothing sent", async () => {
    const file = writeContext(
      path.join(tmp.dir, 'params'),
      'from damnit_ctx import Variable\n\n' +
        '@Variable\ndef scaled(run, n: "meta#run_number", factor: "param#factor"):\n    return n * factor\n\n' +
        '@Variable\ndef offset(run, n: "meta#run_number", shift: "param#shift" = 100):\n    return n + shift\n\n' +
        '@Variable\ndef after_scaled(run, s: "var#scaled"):\n    return s\n',
    );
    const out = await runOk(file, { run: 3 });
    assert.match(out.stderr, /WARNING:ctxrunner:Skipping scaled because of missing parameter values: factor\n/);
    assert.equal(out.results.has('scaled'), false);
    assert.deepEqual(result(out, 'offset').value, { t: 'int', v: '103' });
    assert.deepEqual(result(out, 'after_scaled').attributes, {
      error: "Dependencies returned no data:\n- 'scaled'",
      error_cls: 'Skip',
    });
  });
});
